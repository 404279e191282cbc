//! ListSecrets: an account and region's secrets in name order, paged by an opaque token
//! (the last name seen), filtered by name, description, tag key or tag value prefixes.

use base64::Engine;

use super::*;

/// AWS's default and largest page.
const MAX_RESULTS: u32 = 100;
/// Rows read per store call while filling a filtered page.
const BATCH: u32 = 100;
/// A filtered page stops after reading this many batches (and says where to go on), so one
/// call never walks an unbounded number of rows.
const MAX_BATCHES: usize = 10;

#[derive(Debug, Default)]
pub struct ListSecrets {
    pub max_results: Option<u32>,
    pub next_token: Option<String>,
    pub filters: Vec<SecretFilter>,
    pub include_planned_deletion: bool,
}

/// One filter: its key (`name`, `description`, `tag-key`, `tag-value`, `all`) and values, any
/// of which may match (a value starting with `!` matches what it does not).
#[derive(Debug, Clone)]
pub struct SecretFilter {
    pub key: String,
    pub values: Vec<String>,
}

impl SecretFilter {
    fn check(&self) -> SecretsResult<()> {
        match self.key.as_str() {
            "name" | "description" | "tag-key" | "tag-value" | "all" => Ok(()),
            other => Err(SecretsError::InvalidParameter(format!("berth's Secrets Manager does not filter by {other:?} yet."))),
        }
    }

    fn matches(&self, s: &Secret) -> bool {
        self.values.iter().any(|value| {
            let (negated, prefix) = match value.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, value.as_str()),
            };
            self.matches_prefix(s, prefix) != negated
        })
    }

    fn matches_prefix(&self, s: &Secret, prefix: &str) -> bool {
        let lower = prefix.to_lowercase();
        let description = || s.description.as_deref().is_some_and(|d| d.to_lowercase().starts_with(&lower));
        let name = || s.name.starts_with(prefix);
        let tag_key = || s.tags.iter().any(|t| t.key.starts_with(prefix));
        let tag_value = || s.tags.iter().any(|t| t.value.starts_with(prefix));
        match self.key.as_str() {
            "name" => name(),
            "description" => description(),
            "tag-key" => tag_key(),
            "tag-value" => tag_value(),
            _ => name() || description() || tag_key() || tag_value(),
        }
    }
}

impl Registry {
    /// ListSecrets (`secretsmanager:ListSecrets` on `*`): secrets scheduled for deletion only
    /// with `include_planned_deletion`. Secrets past their recovery window are purged here.
    pub async fn secrets_list(&self, principal: &Principal, req: ListSecrets) -> SecretsResult<(Vec<Secret>, Option<String>)> {
        let scope = self.secrets_scope(principal);
        self.authorize(principal, "secretsmanager:ListSecrets", Resource::Registry(&scope)).await?;
        for f in &req.filters {
            f.check()?;
        }
        let limit = req.max_results.unwrap_or(MAX_RESULTS).clamp(1, MAX_RESULTS);
        let mut after = match &req.next_token {
            Some(t) => Some(decode_token(t)?),
            None => None,
        };
        let mut page = Vec::new();
        for _ in 0..MAX_BATCHES {
            let rows = self.meta.list_secrets(&scope.account, &scope.region, after.as_deref(), BATCH).await?;
            let exhausted = rows.len() < BATCH as usize;
            for row in rows {
                after = Some(row.name.clone());
                let Some(s) = self.unless_purged(Stored::from_row(row)?).await? else { continue };
                let s = s.public();
                if (s.deletion_date.is_none() || req.include_planned_deletion) && req.filters.iter().all(|f| f.matches(&s)) {
                    page.push(s);
                    if page.len() == limit as usize {
                        return Ok((page, after.as_deref().map(encode_token)));
                    }
                }
            }
            if exhausted {
                return Ok((page, None));
            }
        }
        Ok((page, after.as_deref().map(encode_token)))
    }
}

fn encode_token(name: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(name)
}

fn decode_token(token: &str) -> SecretsResult<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| SecretsError::InvalidNextToken("The NextToken value is not valid.".into()))
}
