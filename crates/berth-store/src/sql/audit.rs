//! The audit trail: every statement is the same on both backends.

use sqlx::Pool;

use super::repos::acquire;
use super::{stmt, Backend, Columns, Conn, Stmt};
use crate::error::DbContext;
use crate::meta::*;
use crate::StoreError;

const COLUMNS: &str = "e.seq, e.event_id, e.account_id, e.event_time, e.event_name, e.event_source, e.username, \
                       e.access_key_id, e.read_only, e.record, e.prev_hash, e.hash";
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn event_row<R: Columns>(r: &R) -> Result<AuditEventRow, sqlx::Error> {
    Ok(AuditEventRow {
        seq: r.int("seq")?,
        event: NewAuditEvent {
            event_id: r.text("event_id")?,
            account: r.text("account_id")?,
            event_time: r.int("event_time")?,
            event_name: r.text("event_name")?,
            event_source: r.text("event_source")?,
            username: r.text("username")?,
            access_key_id: r.text("access_key_id")?,
            read_only: r.flag("read_only")?,
            resources: Vec::new(),
            record: r.text("record")?,
        },
        prev_hash: r.text("prev_hash")?,
        hash: r.text("hash")?,
    })
}

/// Fills in each row's resources (one query for the page, by its seqs: a page of rare
/// records spans most of the trail, so a seq range would read nearly every resource row).
async fn with_resources<C: Conn>(conn: &mut C, mut rows: Vec<AuditEventRow>) -> Result<Vec<AuditEventRow>, StoreError> {
    if rows.is_empty() {
        return Ok(rows);
    }
    let (lo, hi) = rows.iter().fold((i64::MAX, i64::MIN), |(lo, hi), r| (lo.min(r.seq), hi.max(r.seq)));
    let s = if hi - lo < 2 * rows.len() as i64 {
        // A walk of the chain: contiguous seqs, any number of them.
        stmt("SELECT seq, resource_name, resource_type FROM audit_resources WHERE seq >= $1 AND seq <= $2 ORDER BY seq, resource_name")
            .bind(lo)
            .bind(hi)
    } else {
        // A lookup's page (at most MaxResults + 1 rows).
        let list: Vec<String> = (1..=rows.len()).map(C::ordered_param).collect();
        let sql = format!(
            "SELECT seq, resource_name, resource_type FROM audit_resources WHERE seq IN ({}) ORDER BY seq, resource_name",
            list.join(", ")
        );
        rows.iter().fold(stmt(sql), |s, row| s.bind(row.seq))
    };
    let found = conn.all(s).await.ctx("reading audit resources")?;
    for r in found {
        let seq = r.int("seq").ctx("reading audit resources")?;
        if let Some(row) = rows.iter_mut().find(|row| row.seq == seq) {
            row.event
                .resources
                .push((r.text("resource_name").ctx("reading audit resources")?, r.text("resource_type").ctx("reading audit resources")?));
        }
    }
    Ok(rows)
}

async fn last_link<C: Conn>(conn: &mut C) -> Result<(i64, String), StoreError> {
    let last = conn.opt(stmt("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")).await.ctx("reading the audit chain")?;
    if let Some(r) = last {
        return Ok((r.int("seq").ctx("reading the audit chain")?, r.text("hash").ctx("reading the audit chain")?));
    }
    let anchor = conn.opt(stmt("SELECT seq, hash FROM audit_anchor WHERE id = 1")).await.ctx("reading the audit anchor")?;
    match anchor {
        Some(r) => Ok((r.int("seq").ctx("reading the audit anchor")?, r.text("hash").ctx("reading the audit anchor")?)),
        None => Ok((0, GENESIS.to_string())),
    }
}

/// Rows per `INSERT`: a batch of records goes in a few multi-row statements, because each
/// statement is a round trip to the database (on SQLite, two thread hand-offs to its worker:
/// one statement per row made the writer's context switches cost more than the rows). A few
/// fixed sizes keep the prepared-statement cache small.
const CHUNKS: [usize; 4] = [64, 16, 4, 1];

/// Splits `items` into runs of the sizes in `CHUNKS`, largest first.
fn chunked<T>(mut items: &[T]) -> Vec<&[T]> {
    let mut runs = Vec::new();
    while !items.is_empty() {
        let n = CHUNKS.into_iter().find(|&n| n <= items.len()).unwrap_or(1);
        let (run, rest) = items.split_at(n);
        runs.push(run);
        items = rest;
    }
    runs
}

/// `INSERT INTO <head> VALUES ($1, …, $k), ($k+1, …), …` for `rows` rows of `width` columns.
fn multi_row_insert<C: Conn>(head: &str, width: usize, rows: usize) -> String {
    let mut sql = format!("INSERT INTO {head} VALUES ");
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..width {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&C::ordered_param(r * width + c + 1));
        }
        sql.push(')');
    }
    sql
}

const EVENTS_HEAD: &str = "audit_events (seq, event_id, account_id, event_time, event_name, event_source, username, \
                           access_key_id, read_only, record, prev_hash, hash)";
const RESOURCES_HEAD: &str = "audit_resources (seq, account_id, resource_name, resource_type, event_time)";

pub async fn append_audit_events<DB: Backend>(
    pool: &Pool<DB>,
    events: &[NewAuditEvent],
    chain: &ChainHash,
) -> Result<Vec<AuditEventRow>, StoreError> {
    let mut tx = pool.begin().await.ctx("appending audit records")?;
    // One chain across nodes: no other append may read the same last record.
    tx.lock_table("audit_events").await.ctx("locking the audit trail")?;
    let (mut seq, mut prev) = last_link(&mut *tx).await?;
    let mut written = Vec::with_capacity(events.len());
    for e in events {
        seq += 1;
        let hash = chain(&prev, &e.record);
        written.push(AuditEventRow { seq, event: e.clone(), prev_hash: std::mem::replace(&mut prev, hash.clone()), hash });
    }
    for run in chunked(&written) {
        let sql = multi_row_insert::<DB::Connection>(EVENTS_HEAD, 12, run.len());
        let mut s = stmt(sql);
        for w in run {
            let e = &w.event;
            s = s
                .bind(w.seq)
                .bind(&e.event_id)
                .bind(&e.account)
                .bind(e.event_time)
                .bind(&e.event_name)
                .bind(&e.event_source)
                .bind(&e.username)
                .bind(&e.access_key_id)
                .bind(e.read_only)
                .bind(&e.record)
                .bind(&w.prev_hash)
                .bind(&w.hash);
        }
        tx.exec(s).await.ctx("appending audit records")?;
    }
    let mut resources: Vec<(&AuditEventRow, &str, &str)> = Vec::new();
    for w in &written {
        let mut names: Vec<&(String, String)> = w.event.resources.iter().collect();
        names.sort();
        names.dedup_by(|a, b| a.0 == b.0);
        resources.extend(names.into_iter().map(|(name, kind)| (w, name.as_str(), kind.as_str())));
    }
    for run in chunked(&resources) {
        let mut s = stmt(multi_row_insert::<DB::Connection>(RESOURCES_HEAD, 5, run.len()));
        for (w, name, kind) in run {
            s = s.bind(w.seq).bind(&w.event.account).bind(*name).bind(*kind).bind(w.event.event_time);
        }
        tx.exec(s).await.ctx("appending audit records' resources")?;
    }
    tx.commit().await.ctx("committing audit records")?;
    Ok(written)
}

/// The lookup's statement: one index range per attribute, newest first.
fn lookup_statement(q: &AuditQuery) -> Stmt<'_> {
    // A resource lookup walks audit_resources' own (account, name|type, time, seq) index and
    // joins each hit's record: `CROSS JOIN` fixes that order on SQLite, whose planner (no
    // statistics) otherwise walked every record of the time range probing for the resource.
    let resource = |col: &'static str, v| (format!("SELECT {COLUMNS} FROM audit_resources r CROSS JOIN audit_events e"), "r", col, v);
    let (mut sql, t, column) = match &q.attribute {
        Some(AuditAttribute::ResourceName(v)) => {
            let (sql, t, col, v) = resource("r.resource_name", AttrArg::Text(v));
            (sql, t, Some((col, v)))
        }
        Some(AuditAttribute::ResourceType(v)) => {
            let (sql, t, col, v) = resource("r.resource_type", AttrArg::Text(v));
            (sql, t, Some((col, v)))
        }
        other => {
            let column = match other {
                Some(AuditAttribute::EventName(v)) => Some(("e.event_name", AttrArg::Text(v))),
                Some(AuditAttribute::Username(v)) => Some(("e.username", AttrArg::Text(v))),
                Some(AuditAttribute::EventSource(v)) => Some(("e.event_source", AttrArg::Text(v))),
                Some(AuditAttribute::EventId(v)) => Some(("e.event_id", AttrArg::Text(v))),
                Some(AuditAttribute::AccessKeyId(v)) => Some(("e.access_key_id", AttrArg::Text(v))),
                Some(AuditAttribute::ReadOnly(v)) => Some(("e.read_only", AttrArg::Flag(*v))),
                _ => None,
            };
            (format!("SELECT {COLUMNS} FROM audit_events e"), "e", column)
        }
    };
    let mut conds = vec![format!("{t}.account_id = $1")];
    if t == "r" {
        conds.push("e.seq = r.seq".to_string());
    }
    let mut s_args: Vec<AttrArg> = Vec::new();
    if let Some((col, arg)) = column {
        conds.push(format!("{col} = $2"));
        s_args.push(arg);
    }
    let mut n = 1 + s_args.len();
    if q.start.is_some() {
        n += 1;
        conds.push(format!("{t}.event_time >= ${n}"));
    }
    if q.end.is_some() {
        n += 1;
        conds.push(format!("{t}.event_time <= ${n}"));
    }
    if q.before.is_some() {
        conds.push(format!("({t}.event_time < ${} OR ({t}.event_time = ${} AND {t}.seq < ${}))", n + 1, n + 1, n + 2));
    }
    sql.push_str(" WHERE ");
    sql.push_str(&conds.join(" AND "));
    sql.push_str(&format!(" ORDER BY {t}.event_time DESC, {t}.seq DESC LIMIT {}", q.limit.max(1)));
    let mut s = stmt(sql).bind(&q.account);
    for a in s_args {
        s = match a {
            AttrArg::Text(v) => s.bind(v),
            AttrArg::Flag(v) => s.bind(v),
        };
    }
    if let Some(t) = q.start {
        s = s.bind(t);
    }
    if let Some(t) = q.end {
        s = s.bind(t);
    }
    if let Some((t, seq)) = q.before {
        s = s.bind(t).bind(seq);
    }
    s
}

enum AttrArg<'a> {
    Text(&'a String),
    Flag(bool),
}

pub async fn lookup_audit_events<DB: Backend>(pool: &Pool<DB>, q: &AuditQuery) -> Result<Vec<AuditEventRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    let rows = conn.all(lookup_statement(q)).await.ctx("looking up audit records")?;
    let rows = rows.iter().map(event_row).collect::<Result<Vec<_>, _>>().ctx("reading audit records")?;
    with_resources(&mut *conn, rows).await
}

pub async fn audit_chain<DB: Backend>(pool: &Pool<DB>, after_seq: i64, limit: u32) -> Result<Vec<AuditEventRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    let sql = format!("SELECT {COLUMNS} FROM audit_events e WHERE e.seq > $1 ORDER BY e.seq LIMIT {}", limit.max(1));
    let rows = conn.all(stmt(sql).bind(after_seq)).await.ctx("reading the audit chain")?;
    let rows = rows.iter().map(event_row).collect::<Result<Vec<_>, _>>().ctx("reading the audit chain")?;
    with_resources(&mut *conn, rows).await
}

pub async fn audit_anchor<DB: Backend>(pool: &Pool<DB>) -> Result<Option<(i64, String)>, StoreError> {
    let mut conn = acquire(pool).await?;
    let row = conn.opt(stmt("SELECT seq, hash FROM audit_anchor WHERE id = 1")).await.ctx("reading the audit anchor")?;
    row.map(|r| Ok((r.int("seq")?, r.text("hash")?))).transpose().ctx("reading the audit anchor")
}

pub async fn prune_audit_events<DB: Backend>(pool: &Pool<DB>, before: Millis) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await.ctx("pruning audit records")?;
    tx.lock_table("audit_events").await.ctx("locking the audit trail")?;
    // The trail is cut before its first record that is still kept, never in the middle.
    let keep =
        tx.opt(stmt("SELECT MIN(seq) AS seq FROM audit_events WHERE event_time >= $1").bind(before)).await.ctx("pruning audit records")?;
    let keep_from = keep.map(|r| r.opt_int("seq")).transpose().ctx("pruning audit records")?.flatten();
    let last = match keep_from {
        Some(k) => tx.opt(stmt("SELECT seq, hash FROM audit_events WHERE seq < $1 ORDER BY seq DESC LIMIT 1").bind(k)).await,
        None => tx.opt(stmt("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")).await,
    }
    .ctx("pruning audit records")?;
    let Some(last) = last else { return Ok(0) };
    let (seq, hash) = (last.int("seq").ctx("pruning audit records")?, last.text("hash").ctx("pruning audit records")?);
    tx.exec(stmt("DELETE FROM audit_resources WHERE seq <= $1").bind(seq)).await.ctx("pruning audit resources")?;
    let n = tx.exec(stmt("DELETE FROM audit_events WHERE seq <= $1").bind(seq)).await.ctx("pruning audit records")?;
    tx.exec(
        stmt("INSERT INTO audit_anchor (id, seq, hash) VALUES (1, $1, $2) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash")
            .bind(seq)
            .bind(&hash),
    )
    .await
    .ctx("moving the audit anchor")?;
    tx.commit().await.ctx("committing the audit pruning")?;
    Ok(n)
}

const DIGEST_COLUMNS: &str = "hour_start, last_seq, last_hash, records, key_arn, signature, created_at";

pub async fn put_audit_digest<DB: Backend>(pool: &Pool<DB>, row: &AuditDigestRow) -> Result<bool, StoreError> {
    let mut conn = acquire(pool).await?;
    let sql =
        format!("INSERT INTO audit_digests ({DIGEST_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (hour_start) DO NOTHING");
    let n = conn
        .exec(
            stmt(sql)
                .bind(row.hour_start)
                .bind(row.last_seq)
                .bind(&row.last_hash)
                .bind(row.records)
                .bind(&row.key_arn)
                .bind(&row.signature)
                .bind(row.created_at),
        )
        .await
        .ctx("writing an audit digest")?;
    Ok(n > 0)
}

pub async fn audit_digests<DB: Backend>(pool: &Pool<DB>, since: Millis) -> Result<Vec<AuditDigestRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    let sql = format!("SELECT {DIGEST_COLUMNS} FROM audit_digests WHERE hour_start >= $1 ORDER BY hour_start");
    let rows = conn.all(stmt(sql).bind(since)).await.ctx("reading audit digests")?;
    rows.iter()
        .map(|r| {
            Ok(AuditDigestRow {
                hour_start: r.int("hour_start")?,
                last_seq: r.int("last_seq")?,
                last_hash: r.text("last_hash")?,
                records: r.int("records")?,
                key_arn: r.text("key_arn")?,
                signature: r.text("signature")?,
                created_at: r.int("created_at")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .ctx("reading audit digests")
}

pub async fn audit_hour_end<DB: Backend>(pool: &Pool<DB>, from: Millis, before: Millis) -> Result<Option<(i64, String, i64)>, StoreError> {
    let mut conn = acquire(pool).await?;
    let count = conn
        .opt(
            stmt("SELECT COUNT(*) AS n, MAX(seq) AS seq FROM audit_events WHERE event_time >= $1 AND event_time < $2")
                .bind(from)
                .bind(before),
        )
        .await
        .ctx("reading an hour of audit records")?;
    let Some(count) = count else { return Ok(None) };
    let (n, seq) = (count.int("n").ctx("counting audit records")?, count.opt_int("seq").ctx("counting audit records")?);
    let Some(seq) = seq else { return Ok(None) };
    let row = conn.opt(stmt("SELECT hash FROM audit_events WHERE seq = $1").bind(seq)).await.ctx("reading an audit record")?;
    let hash = row.map(|r| r.text("hash")).transpose().ctx("reading an audit record")?.unwrap_or_default();
    Ok(Some((seq, hash, n)))
}
