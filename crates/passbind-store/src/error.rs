//! Database errors as [`StoreError`]s.
//!
//! Messages are for logs. They name the operation, the database's error code and its primary
//! message (which names a constraint or a table, never a bound value); they never carry the
//! driver's detail fields, decoded values or connection strings, so no secret can leak through.

use crate::db::DbError;
use passbind_core::model::StoreError;

pub(crate) fn db(context: &str, e: DbError) -> StoreError {
    StoreError::Backend(format!("{context}: {}", e.message))
}

/// A stored value the adapter cannot turn into a record: the database holds something this
/// version does not understand. The value itself is not quoted.
pub(crate) fn corrupt(table: &str, column: &str, what: &str) -> StoreError {
    StoreError::Backend(format!("stored {table}.{column} is invalid: {what}"))
}
