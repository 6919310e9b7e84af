//! The two database engines behind one small vocabulary, so that every statement of the store
//! and the logic around it (preconditions, audit appends, decoders) is written once:
//!
//! - [`Value`]: what a statement binds and a row holds: integers, text, bytes, or a typed NULL
//!   (the type matters to PostgreSQL);
//! - [`Row`]: the values of one result row, read by column name;
//! - [`Exec`]: runs a statement on a connection inside the current transaction.
//!
//! [`sqlite`] drives SQLite through rusqlite on threads that own their connections: one
//! writer that commits changes in groups, and a few read-only connections used in place.
//! [`postgres`] drives PostgreSQL through sqlx's typed driver with prepared statements.
//! Statement texts use SQLite's `?` placeholders; [`crate::sql::sql`] gives PostgreSQL its
//! `$n` form once per statement.

pub(crate) mod migrate;
pub(crate) mod postgres;
pub(crate) mod sqlite;

use async_trait::async_trait;
use std::borrow::Cow;
use std::sync::Arc;

/// The type of a NULL parameter (PostgreSQL infers a parameter's type from what is bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Int,
    Text,
    Blob,
}

/// A bound parameter or a column value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    Null(Kind),
    Int(i64),
    Text(Cow<'a, str>),
    Blob(Cow<'a, [u8]>),
}

impl Value<'_> {
    pub(crate) fn into_owned(self) -> Value<'static> {
        match self {
            Value::Null(k) => Value::Null(k),
            Value::Int(i) => Value::Int(i),
            Value::Text(t) => Value::Text(Cow::Owned(t.into_owned())),
            Value::Blob(b) => Value::Blob(Cow::Owned(b.into_owned())),
        }
    }
}

impl From<i64> for Value<'_> {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<i16> for Value<'_> {
    fn from(v: i16) -> Self {
        Value::Int(i64::from(v))
    }
}
impl From<u32> for Value<'_> {
    fn from(v: u32) -> Self {
        Value::Int(i64::from(v))
    }
}
impl<'a> From<&'a str> for Value<'a> {
    fn from(v: &'a str) -> Self {
        Value::Text(Cow::Borrowed(v))
    }
}
impl From<String> for Value<'_> {
    fn from(v: String) -> Self {
        Value::Text(Cow::Owned(v))
    }
}
impl<'a> From<&'a [u8]> for Value<'a> {
    fn from(v: &'a [u8]) -> Self {
        Value::Blob(Cow::Borrowed(v))
    }
}
impl From<Vec<u8>> for Value<'_> {
    fn from(v: Vec<u8>) -> Self {
        Value::Blob(Cow::Owned(v))
    }
}
impl From<Option<i64>> for Value<'_> {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Value::Null(Kind::Int), Value::Int)
    }
}
impl<'a> From<Option<&'a str>> for Value<'a> {
    fn from(v: Option<&'a str>) -> Self {
        v.map_or(Value::Null(Kind::Text), Value::from)
    }
}
impl<'a> From<Option<&'a [u8]>> for Value<'a> {
    fn from(v: Option<&'a [u8]>) -> Self {
        v.map_or(Value::Null(Kind::Blob), Value::from)
    }
}

/// `args![a, b, c]`: the parameters of a statement, in placeholder order.
macro_rules! args {
    ($($v:expr),* $(,)?) => {
        vec![$($crate::db::Value::from($v)),*]
    };
}
pub(crate) use args;

/// A value read from a row, by the type the decoder asks for.
pub(crate) trait FromValue: Sized {
    fn from_value(v: &Value<'static>) -> Option<Self>;
}
impl FromValue for i64 {
    fn from_value(v: &Value<'static>) -> Option<Self> {
        match v {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}
impl FromValue for String {
    fn from_value(v: &Value<'static>) -> Option<Self> {
        match v {
            Value::Text(t) => Some(t.clone().into_owned()),
            _ => None,
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(v: &Value<'static>) -> Option<Self> {
        match v {
            Value::Blob(b) => Some(b.clone().into_owned()),
            _ => None,
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value<'static>) -> Option<Self> {
        match v {
            Value::Null(_) => Some(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// One result row. The column names are shared by every row of a result.
#[derive(Debug, Clone)]
pub struct Row {
    columns: Arc<[Box<str>]>,
    values: Vec<Value<'static>>,
}

impl Row {
    pub(crate) fn new(columns: Arc<[Box<str>]>, values: Vec<Value<'static>>) -> Self {
        Self { columns, values }
    }

    /// The row of a join cut into the rows of its tables: `widths` columns each, left to
    /// right, under the same column names.
    pub(crate) fn into_parts(self, widths: &[usize]) -> Vec<Row> {
        let mut values = self.values.into_iter();
        let mut start = 0;
        widths
            .iter()
            .map(|&w| {
                let end = (start + w).min(self.columns.len());
                let part = Row {
                    columns: self.columns.get(start..end).unwrap_or_default().into(),
                    values: values.by_ref().take(w).collect(),
                };
                start = end;
                part
            })
            .collect()
    }

    /// Whether column `index` is NULL (a row a `LEFT JOIN` did not find).
    pub(crate) fn is_null(&self, index: usize) -> bool {
        matches!(self.values.get(index), Some(Value::Null(_)) | None)
    }

    /// The value of the column called `name`, if there is one.
    pub(crate) fn value(&self, name: &str) -> Option<&Value<'static>> {
        let i = self.columns.iter().position(|c| &**c == name)?;
        self.values.get(i)
    }

    /// The value of column `name` as `T`; `None` if absent or of another type.
    pub(crate) fn get<T: FromValue>(&self, name: &str) -> Option<T> {
        T::from_value(self.value(name)?)
    }

    /// The value of column `name` as `T`; an error if absent or of another type (the error
    /// carries nothing of the value).
    pub(crate) fn try_get<T: FromValue>(&self, name: &str) -> Result<T, BadColumn> {
        self.get(name).ok_or(BadColumn)
    }

    /// Column `index` as `T`.
    pub(crate) fn at<T: FromValue>(&self, index: usize) -> Option<T> {
        T::from_value(self.values.get(index)?)
    }

    /// Column `index` as an integer (tests and tooling).
    pub fn int(&self, index: usize) -> Option<i64> {
        self.at(index)
    }

    /// Column `index` as text (tests and tooling).
    pub fn text(&self, index: usize) -> Option<String> {
        self.at(index)
    }

    /// Column `index` as bytes (tests and tooling).
    pub fn bytes(&self, index: usize) -> Option<Vec<u8>> {
        self.at(index)
    }
}

/// A column that is absent or holds another type than the decoder expects.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BadColumn;

/// What went wrong in the database, classified where the store acts on it.
#[derive(Debug, Clone)]
pub(crate) struct DbError {
    pub(crate) kind: DbErrorKind,
    /// For logs: the database's code and primary message, never a bound value.
    pub(crate) message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DbErrorKind {
    /// A unique or primary-key constraint refused the statement.
    Unique,
    /// A foreign-key constraint refused the statement.
    ForeignKey,
    /// SQLite gave up waiting for a lock held by another process (the busy timeout passed).
    Busy,
    /// PostgreSQL: the write at this position of a one-statement change
    /// ([`crate::change`]) changed no row, and the whole statement was undone.
    Precondition(usize),
    Other,
}

impl DbError {
    pub(crate) fn other(message: impl Into<String>) -> Self {
        Self {
            kind: DbErrorKind::Other,
            message: message.into(),
        }
    }
}

/// Runs statements inside the current transaction of one connection.
#[async_trait]
pub(crate) trait Exec: Send {
    /// Runs a statement; returns the number of rows it changed.
    async fn execute(&mut self, sql: &str, args: Vec<Value<'_>>) -> Result<u64, DbError>;
    /// Runs a query; returns its rows.
    async fn query(&mut self, sql: &str, args: Vec<Value<'_>>) -> Result<Vec<Row>, DbError>;
}
