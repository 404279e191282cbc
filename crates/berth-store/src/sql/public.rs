//! ECR Public registries and repository catalog data: every statement is the same on both
//! backends.

use sqlx::Pool;

use super::repos::acquire;
use super::{stmt, Backend, Columns, Conn};
use crate::error::DbContext;
use crate::meta::*;
use crate::StoreError;

const REGISTRY_COLUMNS: &str = "account_id, alias, display_name, created_at";

fn registry_row<R: Columns>(r: &R) -> Result<PublicRegistryRow, sqlx::Error> {
    Ok(PublicRegistryRow {
        account: r.text("account_id")?,
        alias: r.text("alias")?,
        display_name: r.text("display_name")?,
        created_at: r.int("created_at")?,
    })
}

async fn registry_where<C: Conn>(conn: &mut C, column: &str, value: &str) -> Result<Option<PublicRegistryRow>, StoreError> {
    let sql = format!("SELECT {REGISTRY_COLUMNS} FROM public_registries WHERE {column} = $1");
    let row = conn.opt(stmt(&sql).bind(value)).await.ctx("reading a public registry")?;
    row.as_ref().map(registry_row).transpose().ctx("reading a public registry")
}

pub async fn public_registry<DB: Backend>(pool: &Pool<DB>, account: &str) -> Result<Option<PublicRegistryRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    registry_where(&mut *conn, "account_id", account).await
}

pub async fn public_registry_by_alias<DB: Backend>(pool: &Pool<DB>, alias: &str) -> Result<Option<PublicRegistryRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    registry_where(&mut *conn, "alias", alias).await
}

/// Under the table lock, so two nodes never both take one alias (the UNIQUE constraint would
/// refuse the second with an error rather than an answer).
async fn write_registry<DB: Backend>(
    pool: &Pool<DB>,
    row: &PublicRegistryRow,
    replace_alias: bool,
) -> Result<PublicAliasOutcome, StoreError> {
    let mut tx = pool.begin().await.ctx("writing a public registry")?;
    tx.lock_table("public_registries").await.ctx("locking public registries")?;
    let existing = registry_where(&mut *tx, "account_id", &row.account).await?;
    if existing.is_some() && !replace_alias {
        return Ok(PublicAliasOutcome::Exists);
    }
    if registry_where(&mut *tx, "alias", &row.alias).await?.is_some_and(|other| other.account != row.account) {
        return Ok(PublicAliasOutcome::AliasTaken);
    }
    let statement = match existing {
        Some(_) => stmt("UPDATE public_registries SET alias = $2 WHERE account_id = $1").bind(&row.account).bind(&row.alias),
        None => stmt("INSERT INTO public_registries (account_id, alias, display_name, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&row.account)
            .bind(&row.alias)
            .bind(&row.display_name)
            .bind(row.created_at),
    };
    tx.exec(statement).await.ctx("writing a public registry")?;
    tx.commit().await.ctx("committing a public registry")?;
    Ok(PublicAliasOutcome::Written)
}

pub async fn create_public_registry<DB: Backend>(pool: &Pool<DB>, row: &PublicRegistryRow) -> Result<PublicAliasOutcome, StoreError> {
    write_registry(pool, row, false).await
}

pub async fn set_public_alias<DB: Backend>(pool: &Pool<DB>, row: &PublicRegistryRow) -> Result<PublicAliasOutcome, StoreError> {
    write_registry(pool, row, true).await
}

pub async fn set_public_display_name<DB: Backend>(pool: &Pool<DB>, account: &str, display_name: &str) -> Result<bool, StoreError> {
    let mut conn = acquire(pool).await?;
    let n = conn
        .exec(stmt("UPDATE public_registries SET display_name = $2 WHERE account_id = $1").bind(account).bind(display_name))
        .await
        .ctx("writing a public registry's display name")?;
    Ok(n > 0)
}

pub async fn repository_catalog<DB: Backend>(pool: &Pool<DB>, key: &RepoKey) -> Result<Option<RepositoryCatalogRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    let row = conn
        .opt(
            stmt(
                "SELECT c.catalog, c.logo, c.updated_at FROM public_repository_catalog c \
                 JOIN repositories r ON r.id = c.repository_id \
                 WHERE r.account_id = $1 AND r.region = $2 AND r.name = $3",
            )
            .bind(&key.account)
            .bind(&key.region)
            .bind(&key.name),
        )
        .await
        .ctx("reading repository catalog data")?;
    row.map(|r| Ok(RepositoryCatalogRow { catalog: r.text("catalog")?, logo: r.opt_bytes("logo")?, updated_at: r.int("updated_at")? }))
        .transpose()
        .ctx("reading repository catalog data")
}

pub async fn put_repository_catalog<DB: Backend>(pool: &Pool<DB>, key: &RepoKey, row: &RepositoryCatalogRow) -> Result<bool, StoreError> {
    let mut conn = acquire(pool).await?;
    let n = conn
        .exec(
            stmt(
                "INSERT INTO public_repository_catalog (repository_id, catalog, logo, updated_at) \
                 SELECT id, $4, $5, $6 FROM repositories WHERE account_id = $1 AND region = $2 AND name = $3 \
                 ON CONFLICT (repository_id) DO UPDATE SET catalog = excluded.catalog, logo = excluded.logo, \
                 updated_at = excluded.updated_at",
            )
            .bind(&key.account)
            .bind(&key.region)
            .bind(&key.name)
            .bind(&row.catalog)
            .bind(row.logo.as_deref())
            .bind(row.updated_at),
        )
        .await
        .ctx("writing repository catalog data")?;
    Ok(n > 0)
}

/// The gallery's search: one statement, bounded by `limit`, so a page costs the same with any
/// number of public repositories. Matching lower-cases in byte order (ASCII letters only, on
/// both backends), as the needle is.
pub async fn search_public_repositories<DB: Backend>(
    pool: &Pool<DB>,
    region: &str,
    needle: &str,
    after: Option<(&str, &str)>,
    limit: u32,
) -> Result<Vec<PublicRepositoryHit>, StoreError> {
    let mut conn = acquire(pool).await?;
    let instr = <DB::Connection as Conn>::INSTR;
    let byte_order = <DB::Connection as Conn>::BYTE_ORDER;
    let description = <DB::Connection as Conn>::json_text("c.catalog", "description");
    let mut sql = String::from(
        "SELECT r.account_id, r.region, r.name, r.created_at, p.alias, c.catalog, \
         (c.logo IS NOT NULL) AS has_logo \
         FROM repositories r JOIN public_registries p ON p.account_id = r.account_id \
         LEFT JOIN public_repository_catalog c ON c.repository_id = r.id \
         WHERE r.region = $1",
    );
    let mut next = 2;
    if !needle.is_empty() {
        sql.push_str(&format!(
            " AND ({instr}(lower(r.name{byte_order}), $2) > 0 OR {instr}(lower(p.alias{byte_order}), $2) > 0 \
             OR {instr}(lower(COALESCE({description}, ''){byte_order}), $2) > 0)"
        ));
        next += 1;
    }
    if after.is_some() {
        sql.push_str(&format!(" AND (p.alias > ${a} OR (p.alias = ${a} AND r.name > ${n}))", a = next, n = next + 1));
        next += 2;
    }
    sql.push_str(&format!(" ORDER BY p.alias, r.name LIMIT ${next}"));
    let mut s = stmt(sql).bind(region);
    if !needle.is_empty() {
        s = s.bind(needle);
    }
    if let Some((alias, name)) = after {
        s = s.bind(alias).bind(name);
    }
    let s = s.bind(i64::from(limit));
    let rows = conn.all(s).await.ctx("searching public repositories")?;
    rows.iter()
        .map(|r| {
            Ok(PublicRepositoryHit {
                key: r.repo_key()?,
                alias: r.text("alias")?,
                created_at: r.int("created_at")?,
                catalog: r.opt_text("catalog")?,
                has_logo: r.flag("has_logo")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .ctx("searching public repositories")
}
