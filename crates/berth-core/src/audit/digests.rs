//! Hourly signed digests (CloudTrail's log file integrity validation): once an hour is over,
//! the chain's hash at that hour's last record, the record count and the hour are signed with a
//! key derived from the root key. Whoever rewrites the chain from some record on (recomputing
//! every later hash, which the chain alone cannot catch) cannot sign the hours it changed:
//! `berth audit verify` recomputes each digest from the stored records and checks its signature.
//!
//! The key is symmetric (HMAC-SHA256 under `root.derive(DIGEST_PURPOSE)`): a digest is checked by
//! whoever holds the root key, which is the operator running `berth audit verify`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::chain::Finding;
use crate::error::Result;
use crate::Registry;

const HOUR: i64 = 3_600_000;
/// An hour is signed this long after it ends, so records queued at its end are written first.
const SETTLE: i64 = 120_000;
/// How far back a signing pass looks for hours without a digest (after downtime).
const LOOK_BACK_HOURS: i64 = 48;
const DIGEST_PURPOSE: &str = "berth audit digest v1";
/// Names the key in the digest rows (it is no KMS key: it is derived from the root key).
pub const DIGEST_KEY: &str = "berth:root-key/audit-digest-v1";

fn message(hour_start: i64, last_seq: i64, last_hash: &str, records: i64) -> String {
    format!("berth-audit-digest-v1\n{hour_start}\n{last_seq}\n{last_hash}\n{records}")
}

impl Registry {
    /// The MAC of a digest's text, or the key service's error text when there is no root key.
    fn digest_signature(&self, text: &str) -> std::result::Result<Hmac<Sha256>, String> {
        let key = self.own_key(DIGEST_PURPOSE).map_err(|e| e.to_string())?;
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.as_slice()) else { unreachable!("HMAC takes keys of any length") };
        mac.update(text.as_bytes());
        Ok(mac)
    }

    /// Signs every finished hour (of the last two days) that has records and no digest yet;
    /// how many it signed (none without a root key). Safe on several nodes at once: an hour
    /// keeps its first digest.
    pub async fn sign_audit_digests(&self) -> Result<u32> {
        if self.own_key(DIGEST_PURPOSE).is_err() {
            return Ok(0);
        }
        let now = self.now();
        let last_done = (now - SETTLE) / HOUR * HOUR - HOUR;
        let mut signed = 0;
        let known: std::collections::HashSet<i64> =
            self.meta.audit_digests(last_done - LOOK_BACK_HOURS * HOUR).await?.into_iter().map(|d| d.hour_start).collect();
        let mut hour = last_done - (LOOK_BACK_HOURS - 1) * HOUR;
        while hour <= last_done {
            if !known.contains(&hour) {
                if let Some((last_seq, last_hash, records)) = self.meta.audit_hour_end(hour, hour + HOUR).await? {
                    let Ok(mac) = self.digest_signature(&message(hour, last_seq, &last_hash, records)) else { return Ok(signed) };
                    let signature = hex::encode(mac.finalize().into_bytes());
                    let row = berth_store::AuditDigestRow {
                        hour_start: hour,
                        last_seq,
                        last_hash,
                        records,
                        key_arn: DIGEST_KEY.into(),
                        signature,
                        created_at: now,
                    };
                    if self.meta.put_audit_digest(&row).await? {
                        signed += 1;
                    }
                }
            }
            hour += HOUR;
        }
        Ok(signed)
    }

    /// Checks every digest of the records still kept (`after_seq`: where the trail starts) against
    /// the records and its signature: Ok((digests checked, findings)), or Err(why nothing could
    /// be checked) without a root key.
    pub(crate) async fn verify_audit_digests(&self, after_seq: i64) -> Result<std::result::Result<(u64, Vec<Finding>), String>> {
        if let Err(why) = self.own_key(DIGEST_PURPOSE) {
            return Ok(Err(why.to_string()));
        }
        let mut findings = Vec::new();
        let mut checked = 0;
        for digest in self.meta.audit_digests(0).await? {
            if digest.last_seq <= after_seq {
                continue; // the hour's records were pruned with retention
            }
            checked += 1;
            let text = message(digest.hour_start, digest.last_seq, &digest.last_hash, digest.records);
            let signed = hex::decode(&digest.signature)
                .ok()
                .is_some_and(|sig| self.digest_signature(&text).is_ok_and(|mac| mac.verify_slice(&sig).is_ok()));
            if !signed {
                findings.push(Finding::DigestUnsigned { hour_start: digest.hour_start });
                continue;
            }
            let now = self.meta.audit_hour_end(digest.hour_start, digest.hour_start + HOUR).await?;
            if now != Some((digest.last_seq, digest.last_hash.clone(), digest.records)) {
                findings.push(Finding::DigestMismatch { hour_start: digest.hour_start });
            }
        }
        Ok(Ok((checked, findings)))
    }
}
