//! Identity and access for berth: AWS SigV4 request verification ([`sigv4`]), registry
//! tokens for `docker login` ([`token`]) and the IAM policy language with its evaluation
//! ([`policy`]). Pure library: no I/O, no clock reads (callers pass `now`), no storage.

pub mod ecr_actions;
pub mod policy;
pub mod sigv4;
pub mod token;
