//! PostgreSQL through sqlx's typed driver: statements are prepared once per connection and
//! cached (sqlx's statement cache), a change runs as one statement or in one READ COMMITTED
//! transaction on one pooled connection (see [`crate::change`]), and reads go to the pool.

use super::{DbError, DbErrorKind, Exec, Kind, Row, Value};
use async_trait::async_trait;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{Column, PgConnection, Postgres, Row as _, TypeInfo};
use std::borrow::Cow;
use std::sync::Arc;

type Query<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

fn bind<'q>(mut q: Query<'q>, args: &'q [Value<'_>]) -> Query<'q> {
    for v in args {
        q = match v {
            Value::Null(Kind::Int) => q.bind(None::<i64>),
            Value::Null(Kind::Text) => q.bind(None::<&str>),
            Value::Null(Kind::Blob) => q.bind(None::<&[u8]>),
            Value::Int(i) => q.bind(*i),
            Value::Text(t) => q.bind(&**t),
            Value::Blob(b) => q.bind(&**b),
        };
    }
    q
}

pub(crate) fn db_error(e: &sqlx::Error) -> DbError {
    match e {
        sqlx::Error::Database(d) => {
            let code = d.code().map(|c| c.into_owned()).unwrap_or_default();
            let kind = match code.as_str() {
                "23505" => DbErrorKind::Unique,
                "23503" => DbErrorKind::ForeignKey,
                // Raised by `passbind_require_rows` (migration 0007).
                "PBW01" => d
                    .message()
                    .strip_prefix("passbind precondition ")
                    .and_then(|n| n.parse().ok())
                    .map_or(DbErrorKind::Other, DbErrorKind::Precondition),
                _ => DbErrorKind::Other,
            };
            DbError {
                kind,
                message: format!("database error {code}: {}", d.message()),
            }
        }
        sqlx::Error::PoolTimedOut => DbError::other("timed out waiting for a database connection"),
        sqlx::Error::PoolClosed => DbError::other("the connection pool is closed"),
        sqlx::Error::Io(io) => DbError::other(format!("I/O error: {io}")),
        sqlx::Error::Tls(_) => DbError::other("TLS error"),
        sqlx::Error::Protocol(p) => DbError::other(format!("protocol error: {p}")),
        // The source of a decoding error may quote the value: leave it out.
        sqlx::Error::ColumnDecode { index, .. } => {
            DbError::other(format!("cannot decode column {index}"))
        }
        sqlx::Error::Decode(_) => DbError::other("cannot decode a value"),
        sqlx::Error::ColumnNotFound(c) => DbError::other(format!("no column {c}")),
        sqlx::Error::RowNotFound => DbError::other("no row"),
        sqlx::Error::Migrate(m) => DbError::other(format!("migration failed: {m}")),
        sqlx::Error::Configuration(c) => {
            DbError::other(format!("invalid database configuration: {c}"))
        }
        other => DbError::other(other.to_string()),
    }
}

fn value(row: &PgRow, i: usize, type_name: &str) -> Result<Value<'static>, sqlx::Error> {
    Ok(match type_name {
        "INT8" => row.try_get::<Option<i64>, _>(i)?.into(),
        "INT4" => row.try_get::<Option<i32>, _>(i)?.map(i64::from).into(),
        "INT2" => row.try_get::<Option<i16>, _>(i)?.map(i64::from).into(),
        "BOOL" => row.try_get::<Option<bool>, _>(i)?.map(i64::from).into(),
        "TEXT" | "VARCHAR" | "NAME" | "BPCHAR" => match row.try_get::<Option<String>, _>(i)? {
            Some(s) => Value::Text(Cow::Owned(s)),
            None => Value::Null(Kind::Text),
        },
        "BYTEA" => match row.try_get::<Option<Vec<u8>>, _>(i)? {
            Some(b) => Value::Blob(Cow::Owned(b)),
            None => Value::Null(Kind::Blob),
        },
        "VOID" => Value::Null(Kind::Int),
        other => {
            return Err(sqlx::Error::Decode(
                format!("unsupported column type {other}").into(),
            ))
        }
    })
}

pub(crate) fn rows(rows: &[PgRow]) -> Result<Vec<Row>, DbError> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let columns: Arc<[Box<str>]> = first
        .columns()
        .iter()
        .map(|c| Box::from(c.name()))
        .collect::<Vec<_>>()
        .into();
    let types: Vec<String> = first
        .columns()
        .iter()
        .map(|c| c.type_info().name().to_owned())
        .collect();
    rows.iter()
        .map(|r| {
            let values = types
                .iter()
                .enumerate()
                .map(|(i, t)| value(r, i, t))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| db_error(&e))?;
            Ok(Row::new(Arc::clone(&columns), values))
        })
        .collect()
}

/// Statements on one connection (inside its transaction, if one is open).
pub(crate) struct PgExec<'c> {
    pub(crate) conn: &'c mut PgConnection,
}

#[async_trait]
impl Exec for PgExec<'_> {
    async fn execute(&mut self, sql: &str, args: Vec<Value<'_>>) -> Result<u64, DbError> {
        bind(sqlx::query(sql), &args)
            .execute(&mut *self.conn)
            .await
            .map(|d| d.rows_affected())
            .map_err(|e| db_error(&e))
    }

    async fn query(&mut self, sql: &str, args: Vec<Value<'_>>) -> Result<Vec<Row>, DbError> {
        let got = bind(sqlx::query(sql), &args)
            .fetch_all(&mut *self.conn)
            .await
            .map_err(|e| db_error(&e))?;
        rows(&got)
    }
}

/// Runs a statement on the pool (in a transaction of its own); returns the rows it changed.
pub(crate) async fn execute(
    pool: &sqlx::PgPool,
    sql: &str,
    args: &[Value<'_>],
) -> Result<u64, DbError> {
    bind(sqlx::query(sql), args)
        .execute(pool)
        .await
        .map(|d| d.rows_affected())
        .map_err(|e| db_error(&e))
}

/// Runs a query on the pool.
pub(crate) async fn query(
    pool: &sqlx::PgPool,
    sql: &str,
    args: &[Value<'_>],
) -> Result<Vec<Row>, DbError> {
    let got = bind(sqlx::query(sql), args)
        .fetch_all(pool)
        .await
        .map_err(|e| db_error(&e))?;
    rows(&got)
}
