//! Repository creation templates: every statement is the same on both backends.

use sqlx::{FromRow, Pool};

use super::repos::{acquire, stored_setting};
use super::scans::placeholders;
use super::{decode_all, decode_opt, stmt, Backend, Columns, Conn, Stmt};
use crate::error::DbContext;
use crate::meta::*;
use crate::StoreError;

const TEMPLATE_COLS: &str = "prefix, description, encryption_type, kms_key, resource_tags, tag_mutability, tag_mutability_exclusions, \
     repository_policy, lifecycle_policy, applied_for, custom_role_arn, created_at, updated_at";

/// `applied_for` is stored as ECR's values joined by commas (none of them holds one).
fn applied_for_text(values: &[String]) -> String {
    values.join(",")
}

/// Binds $1..$14: the registry, the prefix and every column after it but `created_at`, `updated_at` last.
fn bind_template<'a>(s: Stmt<'a>, account: &'a str, region: &'a str, t: &'a TemplateRow) -> Stmt<'a> {
    s.bind(account)
        .bind(region)
        .bind(&t.prefix)
        .bind(&t.description)
        .bind(t.encryption_type.as_str())
        .bind(&t.kms_key)
        .bind(&t.resource_tags)
        .bind(t.tag_mutability.as_str())
        .bind(&t.tag_mutability_exclusions)
        .bind(&t.repository_policy)
        .bind(&t.lifecycle_policy)
        .bind(applied_for_text(&t.applied_for))
        .bind(&t.custom_role_arn)
        .bind(t.updated_at)
}

impl<'r, R: Columns> FromRow<'r, R> for TemplateRow {
    fn from_row(r: &'r R) -> Result<Self, sqlx::Error> {
        let applied_for = r.text("applied_for")?;
        Ok(TemplateRow {
            prefix: r.text("prefix")?,
            description: r.opt_text("description")?,
            encryption_type: stored_setting(EncryptionType::parse, &r.text("encryption_type")?)?,
            kms_key: r.opt_text("kms_key")?,
            resource_tags: r.text("resource_tags")?,
            tag_mutability: stored_setting(TagMutability::parse, &r.text("tag_mutability")?)?,
            tag_mutability_exclusions: r.opt_text("tag_mutability_exclusions")?,
            repository_policy: r.opt_text("repository_policy")?,
            lifecycle_policy: r.opt_text("lifecycle_policy")?,
            applied_for: applied_for.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect(),
            custom_role_arn: r.opt_text("custom_role_arn")?,
            created_at: r.int("created_at")?,
            updated_at: r.int("updated_at")?,
        })
    }
}

pub async fn create_template<DB: Backend>(
    pool: &Pool<DB>,
    account: &str,
    region: &str,
    t: &TemplateRow,
    limit: u32,
) -> Result<CreateTemplateOutcome, StoreError> {
    let mut tx = pool.begin().await.ctx("creating template")?;
    let existing = tx
        .opt(
            stmt("SELECT 1 FROM repository_creation_templates WHERE account_id = $1 AND region = $2 AND prefix = $3")
                .bind(account)
                .bind(region)
                .bind(&t.prefix),
        )
        .await
        .ctx("reading template")?;
    if existing.is_some() {
        return Ok(CreateTemplateOutcome::Exists);
    }
    let count = tx
        .opt(
            stmt("SELECT COUNT(*) AS n FROM repository_creation_templates WHERE account_id = $1 AND region = $2")
                .bind(account)
                .bind(region),
        )
        .await
        .ctx("counting templates")?
        .map(|r| r.int("n"))
        .transpose()
        .ctx("counting templates")?
        .unwrap_or(0);
    if count >= i64::from(limit) {
        return Ok(CreateTemplateOutcome::LimitReached);
    }
    // ON CONFLICT DO NOTHING: of two creates racing on one prefix (PostgreSQL), one inserts.
    let inserted = tx
        .exec(
            bind_template(
                stmt(
                    "INSERT INTO repository_creation_templates (account_id, region, prefix, description, encryption_type, kms_key, resource_tags, \
                     tag_mutability, tag_mutability_exclusions, repository_policy, lifecycle_policy, applied_for, custom_role_arn, updated_at, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) ON CONFLICT DO NOTHING",
                ),
                account,
                region,
                t,
            )
            .bind(t.created_at),
        )
        .await
        .ctx("inserting template")?;
    tx.commit().await.ctx("committing template")?;
    Ok(if inserted > 0 { CreateTemplateOutcome::Created } else { CreateTemplateOutcome::Exists })
}

pub async fn update_template<DB: Backend>(pool: &Pool<DB>, account: &str, region: &str, t: &TemplateRow) -> Result<bool, StoreError> {
    let mut conn = acquire(pool).await?;
    let changed = conn
        .exec(
            bind_template(
                stmt(
                    "UPDATE repository_creation_templates SET description = $4, encryption_type = $5, kms_key = $6, resource_tags = $7, \
                     tag_mutability = $8, tag_mutability_exclusions = $9, repository_policy = $10, lifecycle_policy = $11, applied_for = $12, \
                     custom_role_arn = $13, updated_at = $14 WHERE account_id = $1 AND region = $2 AND prefix = $3",
                ),
                account,
                region,
                t,
            ),
        )
        .await
        .ctx("updating template")?;
    Ok(changed > 0)
}

pub async fn delete_template<DB: Backend>(
    pool: &Pool<DB>,
    account: &str,
    region: &str,
    prefix: &str,
) -> Result<Option<TemplateRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    let sql = format!(
        "DELETE FROM repository_creation_templates WHERE account_id = $1 AND region = $2 AND prefix = $3 RETURNING {TEMPLATE_COLS}"
    );
    let row = conn.opt(stmt(sql).bind(account).bind(region).bind(prefix)).await.ctx("deleting template")?;
    decode_opt(row, "reading deleted template")
}

pub async fn templates_with_prefixes<DB: Backend>(
    pool: &Pool<DB>,
    account: &str,
    region: &str,
    prefixes: &[String],
) -> Result<Vec<TemplateRow>, StoreError> {
    if prefixes.is_empty() {
        return Ok(Vec::new());
    }
    let mut conn = acquire(pool).await?;
    let sql = format!(
        "SELECT {TEMPLATE_COLS} FROM repository_creation_templates WHERE account_id = $1 AND region = $2 AND prefix IN ({}) ORDER BY prefix",
        placeholders(3, prefixes.len())
    );
    let mut s = stmt(sql).bind(account).bind(region);
    for p in prefixes {
        s = s.bind(p);
    }
    let rows = conn.all(s).await.ctx("reading templates")?;
    decode_all(&rows, "reading template")
}

pub async fn list_templates<DB: Backend>(
    pool: &Pool<DB>,
    account: &str,
    region: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<TemplateRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    let sql = format!(
        "SELECT {TEMPLATE_COLS} FROM repository_creation_templates WHERE account_id = $1 AND region = $2 AND prefix > $3 ORDER BY prefix LIMIT $4"
    );
    let rows =
        conn.all(stmt(sql).bind(account).bind(region).bind(after.unwrap_or("")).bind(i64::from(limit))).await.ctx("listing templates")?;
    decode_all(&rows, "reading template")
}
