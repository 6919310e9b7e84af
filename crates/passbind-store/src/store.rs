//! The [`Store`] port on [`SqlStore`].

use crate::rows::{
    self, api_key_columns, credential_columns, ebt_columns, secret_columns, session_columns,
    user_columns,
};
use crate::sql::sql;
use crate::{error, writes, Backend, SqlStore};
use async_trait::async_trait;
use passbind_core::model::{
    ApiKeyRecord, CredentialRecord, EbtRecord, Millis, SecretRecord, SessionRecord, StoreError,
    UserRecord, Write,
};
use passbind_core::ports::{SessionCursor, Store};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::Any;

type Query<'q> = sqlx::query::Query<'q, Any, AnyArguments<'q>>;

impl SqlStore {
    async fn one<T>(
        &self,
        context: &'static str,
        q: Query<'_>,
        decode: fn(&AnyRow) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let row = q
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| error::db(self.backend, context, e))?;
        row.as_ref().map(decode).transpose()
    }

    async fn all<T>(
        &self,
        context: &'static str,
        q: Query<'_>,
        decode: fn(&AnyRow) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let rows = q
            .fetch_all(&self.pool)
            .await
            .map_err(|e| error::db(self.backend, context, e))?;
        rows.iter().map(decode).collect()
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        writes::validate(&writes)?;
        if writes.is_empty() {
            return Ok(());
        }
        let b = self.backend;
        let _writer = match b {
            Backend::Sqlite => Some(self.write_lock.lock().await),
            Backend::Postgres => None,
        };
        let begun = match b {
            // Take the write lock up front: a deferred transaction that reads first and writes
            // later can fail at once with SQLITE_BUSY when another writer got in between; an
            // immediate one waits for the busy timeout instead.
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        };
        let mut tx = begun.map_err(|e| error::db(b, "begin transaction", e))?;
        for w in &writes {
            if let Err(e) = writes::apply(b, &mut tx, w).await {
                // Nothing of the change stays. Should the rollback itself fail, the connection
                // is not reused in a transaction: sqlx rolls back when the transaction drops.
                let _ = tx.rollback().await;
                return Err(e);
            }
        }
        tx.commit()
            .await
            .map_err(|e| error::db(b, "commit transaction", e))
    }

    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let q = sqlx::query(sql!(
            self.backend,
            concat!("SELECT ", session_columns!(), " FROM sessions WHERE id = ?")
        ))
        .bind(id);
        self.one("read session", q, rows::session).await
    }

    async fn session_by_idv_run(
        &self,
        provider: &str,
        run_id: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let q = sqlx::query(sql!(
            self.backend,
            concat!(
                "SELECT ",
                session_columns!(),
                " FROM sessions WHERE idv_provider = ? AND idv_run_id = ?"
            )
        ))
        .bind(provider)
        .bind(run_id);
        self.one("read session by idv run", q, rows::session).await
    }

    async fn sessions_of_user(
        &self,
        user_id: &str,
        limit: u32,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let q = sqlx::query(sql!(
            self.backend,
            concat!(
                "SELECT ",
                session_columns!(),
                " FROM sessions WHERE user_id = ? ORDER BY created_at DESC, id DESC LIMIT ?"
            )
        ))
        .bind(user_id)
        .bind(i64::from(limit));
        self.all("read sessions of user", q, rows::session).await
    }

    async fn sessions_awaiting_idv(
        &self,
        now: Millis,
        updated_before: Millis,
        after: Option<&SessionCursor>,
        limit: u32,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        // The literal state matches the partial index `sessions_awaiting_idv` (0003).
        let q = match after {
            None => sqlx::query(sql!(
                self.backend,
                concat!(
                    "SELECT ",
                    session_columns!(),
                    " FROM sessions WHERE state = 'idv_pending' AND idv_run_id IS NOT NULL \
                     AND updated_at <= ? AND expires_at > ? \
                     ORDER BY updated_at, id LIMIT ?"
                )
            ))
            .bind(updated_before)
            .bind(now)
            .bind(i64::from(limit)),
            Some(c) => sqlx::query(sql!(
                self.backend,
                concat!(
                    "SELECT ",
                    session_columns!(),
                    " FROM sessions WHERE state = 'idv_pending' AND idv_run_id IS NOT NULL \
                     AND updated_at <= ? AND expires_at > ? \
                     AND (updated_at > ? OR (updated_at = ? AND id > ?)) \
                     ORDER BY updated_at, id LIMIT ?"
                )
            ))
            .bind(updated_before)
            .bind(now)
            .bind(c.updated_at)
            .bind(c.updated_at)
            .bind(c.id.as_str())
            .bind(i64::from(limit)),
        };
        self.all("read sessions awaiting idv", q, rows::session)
            .await
    }

    async fn user(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        let q = sqlx::query(sql!(
            self.backend,
            concat!("SELECT ", user_columns!(), " FROM users WHERE id = ?")
        ))
        .bind(id);
        self.one("read user", q, rows::user).await
    }

    async fn user_by_external_id(
        &self,
        external_user_id: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        let q = sqlx::query(sql!(
            self.backend,
            concat!(
                "SELECT ",
                user_columns!(),
                " FROM users WHERE external_user_id = ?"
            )
        ))
        .bind(external_user_id);
        self.one("read user by external id", q, rows::user).await
    }

    async fn user_by_handle(&self, user_handle: &[u8]) -> Result<Option<UserRecord>, StoreError> {
        let q = sqlx::query(sql!(
            self.backend,
            concat!(
                "SELECT ",
                user_columns!(),
                " FROM users WHERE user_handle = ?"
            )
        ))
        .bind(user_handle);
        self.one("read user by handle", q, rows::user).await
    }

    async fn ebt(&self, user_id: &str) -> Result<Option<EbtRecord>, StoreError> {
        let q = sqlx::query(sql!(
            self.backend,
            concat!("SELECT ", ebt_columns!(), " FROM ebts WHERE user_id = ?")
        ))
        .bind(user_id);
        self.one("read ebt", q, rows::ebt).await
    }

    async fn ebts_not_under_key(&self, current: u32) -> Result<Vec<EbtRecord>, StoreError> {
        let q = sqlx::query(sql!(
            self.backend,
            concat!(
                "SELECT ",
                ebt_columns!(),
                " FROM ebts WHERE key_version <> ? ORDER BY user_id"
            )
        ))
        .bind(i64::from(current));
        self.all("read ebts not under key", q, rows::ebt).await
    }

    async fn credential(
        &self,
        credential_id: &str,
    ) -> Result<Option<CredentialRecord>, StoreError> {
        let q = sqlx::query(sql!(
            self.backend,
            concat!(
                "SELECT ",
                credential_columns!(),
                " FROM credentials WHERE credential_id = ?"
            )
        ))
        .bind(credential_id);
        self.one("read credential", q, rows::credential).await
    }

    async fn credentials_of_user(
        &self,
        user_id: &str,
    ) -> Result<Vec<CredentialRecord>, StoreError> {
        let q = sqlx::query(sql!(
            self.backend,
            concat!(
                "SELECT ",
                credential_columns!(),
                " FROM credentials WHERE user_id = ? ORDER BY created_at, credential_id"
            )
        ))
        .bind(user_id);
        self.all("read credentials of user", q, rows::credential)
            .await
    }

    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let q = sqlx::query(sql!(
            self.backend,
            concat!("SELECT ", api_key_columns!(), " FROM api_keys WHERE id = ?")
        ))
        .bind(id);
        self.one("read api key", q, rows::api_key).await
    }

    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let q = sqlx::query(sql!(
            self.backend,
            concat!(
                "SELECT ",
                api_key_columns!(),
                " FROM api_keys ORDER BY created_at, id"
            )
        ));
        self.all("read api keys", q, rows::api_key).await
    }

    async fn secret(&self, hash: &[u8]) -> Result<Option<SecretRecord>, StoreError> {
        let q = sqlx::query(sql!(
            self.backend,
            concat!("SELECT ", secret_columns!(), " FROM secrets WHERE hash = ?")
        ))
        .bind(hash);
        self.one("read secret", q, rows::secret).await
    }

    async fn failures_since(
        &self,
        user_id: &str,
        kind: &str,
        since: Millis,
    ) -> Result<Vec<Millis>, StoreError> {
        let q = sqlx::query(sql!(
            self.backend,
            "SELECT at FROM failures WHERE user_id = ? AND kind = ? AND at >= ? ORDER BY at"
        ))
        .bind(user_id)
        .bind(kind)
        .bind(since);
        self.all("read failures", q, rows::failure_time).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(|e| error::db(self.backend, "ping", e))
    }
}
