//! Shared statements: content.
