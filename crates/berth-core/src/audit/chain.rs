//! The hash chain and its verification: each record's hash is sha256(prev_hash || record),
//! `record` being the JSON text as stored; the first record follows the genesis hash (64
//! zeros) or, once retention pruned the start, the anchor (the last pruned record's hash).

use std::collections::HashMap;

use sha2::{Digest as _, Sha256};

use crate::error::Result;
use crate::Registry;

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The chain's rule (the store applies it as it appends).
pub fn link(prev_hash: &str, record: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(record.as_bytes());
    hex::encode(h.finalize())
}

/// Something `berth audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The record's text or its lookup columns are not what was hashed.
    Altered { seq: i64, event_id: String },
    /// Records between two stored ones are gone.
    Removed { after_seq: i64, missing: i64, next_event_id: String },
    /// The record followed another one when it was written.
    Reordered { seq: i64, event_id: String, written_after_seq: i64 },
    /// The first record does not follow where the trail starts.
    StartMissing { first_seq: i64, event_id: String },
    /// An hour's digest is not signed by this berth's key (forged, or another root key).
    DigestUnsigned { hour_start: i64 },
    /// The records of a signed hour are not the ones that were signed (rewritten, added, removed).
    DigestMismatch { hour_start: i64 },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::Altered { seq, event_id } => write!(f, "record {seq} (eventID {event_id}) was altered"),
            Finding::Removed { after_seq, missing, next_event_id } => {
                write!(f, "{missing} record(s) after record {after_seq} were removed (the next is eventID {next_event_id})")
            }
            Finding::Reordered { seq, event_id, written_after_seq } => {
                write!(f, "record {seq} (eventID {event_id}) was moved: it was written after record {written_after_seq}")
            }
            Finding::StartMissing { first_seq, event_id } => {
                write!(f, "the records before record {first_seq} (eventID {event_id}) were removed")
            }
            Finding::DigestUnsigned { hour_start } => {
                write!(f, "the digest of the hour from {} is not signed by this berth's key", super::record::rfc3339_seconds(*hour_start))
            }
            Finding::DigestMismatch { hour_start } => {
                write!(
                    f,
                    "the records of the hour from {} are not the ones its signed digest covers",
                    super::record::rfc3339_seconds(*hour_start)
                )
            }
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    pub records: u64,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    pub findings: Vec<Finding>,
    /// Signed hourly digests checked.
    pub digests_checked: u64,
    /// Why the digests were not checked (no root key), if they were not.
    pub digests_unchecked: Option<String>,
}

/// Whether the lookup columns say what the record says.
fn columns_agree(row: &berth_store::AuditEventRow) -> bool {
    let Ok(r) = serde_json::from_str::<super::AuditRecord>(&row.event.record) else { return false };
    r.event_id == row.event.event_id
        && r.event_name == row.event.event_name
        && r.event_source == row.event.event_source
        && r.recipient_account_id == row.event.account
        && r.read_only == row.event.read_only
        && r.user_identity.access_key_id == row.event.access_key_id
}

impl Registry {
    /// Walks the whole trail in chain order.
    pub async fn verify_audit_trail(&self) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        let (mut prev_seq, mut prev_hash) = match self.meta.audit_anchor().await? {
            Some((seq, hash)) => (seq, hash),
            None => (0, GENESIS.to_string()),
        };
        // Every hash seen, to tell a moved record from an altered one.
        let mut seen: HashMap<String, i64> = HashMap::new();
        seen.insert(prev_hash.clone(), prev_seq);
        let kept_after = prev_seq;
        let mut after = 0;
        loop {
            let rows = self.meta.audit_chain(after, 1000).await?;
            let Some(last) = rows.last() else { break };
            after = last.seq;
            for row in rows {
                report.records += 1;
                report.first_seq.get_or_insert(row.seq);
                report.last_seq = Some(row.seq);
                let id = row.event.event_id.clone();
                if link(&row.prev_hash, &row.event.record) != row.hash || !columns_agree(&row) {
                    report.findings.push(Finding::Altered { seq: row.seq, event_id: id.clone() });
                }
                if row.seq != prev_seq + 1 {
                    if report.records == 1 {
                        report.findings.push(Finding::StartMissing { first_seq: row.seq, event_id: id.clone() });
                    } else {
                        report.findings.push(Finding::Removed {
                            after_seq: prev_seq,
                            missing: row.seq - prev_seq - 1,
                            next_event_id: id.clone(),
                        });
                    }
                } else if row.prev_hash != prev_hash {
                    match seen.get(&row.prev_hash) {
                        Some(&earlier) => {
                            report.findings.push(Finding::Reordered { seq: row.seq, event_id: id.clone(), written_after_seq: earlier })
                        }
                        None if !report.findings.iter().any(|f| matches!(f, Finding::Altered { seq, .. } if *seq == row.seq)) => {
                            report.findings.push(Finding::Altered { seq: row.seq, event_id: id.clone() })
                        }
                        None => {}
                    }
                }
                seen.insert(row.hash.clone(), row.seq);
                prev_seq = row.seq;
                prev_hash = row.hash;
            }
        }
        match self.verify_audit_digests(kept_after).await? {
            Ok((checked, findings)) => {
                report.digests_checked = checked;
                report.findings.extend(findings);
            }
            Err(why) => report.digests_unchecked = Some(why),
        }
        Ok(report)
    }

    /// A page of the trail in chain order after `after_seq`: the records whose event time is
    /// in `[since, until)`, and where the next page starts (None at the end).
    pub async fn export_audit_page(&self, after_seq: i64, since: i64, until: Option<i64>) -> Result<(Vec<String>, Option<i64>)> {
        let rows = self.meta.audit_chain(after_seq, 1000).await?;
        let next = rows.last().map(|r| r.seq);
        let texts = rows
            .into_iter()
            .filter(|r| r.event.event_time >= since && until.is_none_or(|u| r.event.event_time < u))
            .map(|r| r.event.record)
            .collect();
        Ok((texts, next))
    }
}
