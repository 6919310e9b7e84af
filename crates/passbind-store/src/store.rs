//! The [`Store`] port on [`SqlStore`].

use crate::db::{args, Row};
use crate::rows::{
    self, api_key_columns, credential_columns, ebt_columns, secret_columns, session_columns,
    user_columns,
};
use crate::sql::sql;
use crate::writes::Stmt;
use crate::{writes, Backend, SqlStore};
use async_trait::async_trait;
use passbind_core::model::{
    ApiKeyRecord, AuditQuery, CredentialRecord, EbtRecord, IdentityProofRecord, Millis,
    SecretRecord, SessionRecord, SessionWithCredential, StoreError, UserRecord, Write,
};
use passbind_core::ports::store::*;
use passbind_core::ports::SessionCursor;

/// Columns per table, as listed by the `*_columns!` macros.
const SESSION_COLUMNS: usize = 14;
const CREDENTIAL_COLUMNS: usize = 15;
const USER_COLUMNS: usize = 5;

/// `alias.column, ...` for a join.
fn prefixed(alias: &str, columns: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A statement composed at run time, in both backends' forms.
fn both(text: String) -> (String, String) {
    let postgres = crate::sql::to_postgres(&text);
    (text, postgres)
}

fn pick(b: Backend, (sqlite, postgres): &(String, String)) -> &str {
    match b {
        Backend::Sqlite => sqlite,
        Backend::Postgres => postgres,
    }
}

impl SqlStore {
    /// At most one record from a short query.
    pub(crate) async fn one<T>(
        &self,
        context: &'static str,
        (sql, args): Stmt<'_>,
        decode: fn(&Row) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let rows = self.rows(context, sql, args).await?;
        rows.first().map(decode).transpose()
    }

    /// Every record of a short query.
    pub(crate) async fn all<T>(
        &self,
        context: &'static str,
        (sql, args): Stmt<'_>,
        decode: fn(&Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let rows = self.rows(context, sql, args).await?;
        rows.iter().map(decode).collect()
    }

    /// Every record of a query that may read many rows (see [`SqlStore::rows_heavy`]).
    pub(crate) async fn all_heavy<T>(
        &self,
        context: &'static str,
        (sql, args): Stmt<'_>,
        decode: fn(&Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let rows = self.rows_heavy(context, sql, args).await?;
        rows.iter().map(decode).collect()
    }
}

#[async_trait]
impl Changes for SqlStore {
    async fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        writes::validate(&writes)?;
        if writes.is_empty() {
            return Ok(());
        }
        self.run_change(Vec::new(), writes).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.rows("ping", "SELECT 1", args![]).await.map(drop)
    }
}

#[async_trait]
impl SessionStore for SqlStore {
    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let q = (
            sql!(
                self.backend,
                concat!("SELECT ", session_columns!(), " FROM sessions WHERE id = ?")
            ),
            args![id],
        );
        self.one("read session", q, rows::session).await
    }

    async fn session_with_credential(
        &self,
        id: &str,
        credential_id: &str,
    ) -> Result<Option<SessionWithCredential>, StoreError> {
        static TEXT: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
        let text = TEXT.get_or_init(|| {
            both(format!(
                "SELECT {}, {}, {} FROM sessions s \
                 LEFT JOIN credentials c ON c.credential_id = ? \
                 LEFT JOIN users u ON u.id = c.user_id WHERE s.id = ?",
                prefixed("s", session_columns!()),
                prefixed("c", credential_columns!()),
                prefixed("u", user_columns!()),
            ))
        });
        let rows = self
            .rows(
                "read session with credential",
                pick(self.backend, text),
                args![credential_id, id],
            )
            .await?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        let mut parts = row
            .into_parts(&[SESSION_COLUMNS, CREDENTIAL_COLUMNS, USER_COLUMNS])
            .into_iter();
        let (Some(s), Some(c), Some(u)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(StoreError::Backend("a join row too short".into()));
        };
        Ok(Some(SessionWithCredential {
            session: rows::session(&s)?,
            credential: (!c.is_null(0)).then(|| rows::credential(&c)).transpose()?,
            owner: (!u.is_null(0)).then(|| rows::user(&u)).transpose()?,
        }))
    }

    async fn session_by_idv_run(
        &self,
        provider: &str,
        run_id: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let q = (
            sql!(
                self.backend,
                concat!(
                    "SELECT ",
                    session_columns!(),
                    " FROM sessions WHERE idv_provider = ? AND idv_run_id = ?"
                )
            ),
            args![provider, run_id],
        );
        self.one("read session by idv run", q, rows::session).await
    }

    async fn sessions_of_user(
        &self,
        user_id: &str,
        limit: u32,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let q = (
            sql!(
                self.backend,
                concat!(
                    "SELECT ",
                    session_columns!(),
                    " FROM sessions WHERE user_id = ? ORDER BY created_at DESC, id DESC LIMIT ?"
                )
            ),
            args![user_id, i64::from(limit)],
        );
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
            None => (
                sql!(
                    self.backend,
                    concat!(
                        "SELECT ",
                        session_columns!(),
                        " FROM sessions WHERE state = 'idv_pending' AND idv_run_id IS NOT NULL \
                     AND updated_at <= ? AND expires_at > ? \
                     ORDER BY updated_at, id LIMIT ?"
                    )
                ),
                args![updated_before, now, i64::from(limit)],
            ),
            Some(c) => (
                sql!(
                    self.backend,
                    concat!(
                        "SELECT ",
                        session_columns!(),
                        " FROM sessions WHERE state = 'idv_pending' AND idv_run_id IS NOT NULL \
                     AND updated_at <= ? AND expires_at > ? \
                     AND (updated_at > ? OR (updated_at = ? AND id > ?)) \
                     ORDER BY updated_at, id LIMIT ?"
                    )
                ),
                args![
                    updated_before,
                    now,
                    c.updated_at,
                    c.updated_at,
                    c.id.as_str(),
                    i64::from(limit)
                ],
            ),
        };
        self.all("read sessions awaiting idv", q, rows::session)
            .await
    }

    async fn secret(&self, hash: &[u8]) -> Result<Option<SecretRecord>, StoreError> {
        let q = (
            sql!(
                self.backend,
                concat!("SELECT ", secret_columns!(), " FROM secrets WHERE hash = ?")
            ),
            args![hash],
        );
        self.one("read secret", q, rows::secret).await
    }

    async fn failures_since(
        &self,
        user_id: &str,
        kind: &str,
        since: Millis,
    ) -> Result<Vec<Millis>, StoreError> {
        let q = (
            sql!(
                self.backend,
                "SELECT at FROM failures WHERE user_id = ? AND kind = ? AND at >= ? ORDER BY at"
            ),
            args![user_id, kind, since],
        );
        self.all("read failures", q, rows::failure_time).await
    }
}

#[async_trait]
impl UserStore for SqlStore {
    async fn user(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        let q = (
            sql!(
                self.backend,
                concat!("SELECT ", user_columns!(), " FROM users WHERE id = ?")
            ),
            args![id],
        );
        self.one("read user", q, rows::user).await
    }

    async fn user_by_external_id(
        &self,
        external_user_id: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        let q = (
            sql!(
                self.backend,
                concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users WHERE external_user_id = ?"
                )
            ),
            args![external_user_id],
        );
        self.one("read user by external id", q, rows::user).await
    }

    async fn user_with_credentials(
        &self,
        external_user_id: &str,
    ) -> Result<Option<(UserRecord, Vec<CredentialRecord>)>, StoreError> {
        static TEXT: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
        let text = TEXT.get_or_init(|| {
            both(format!(
                "SELECT {}, {} FROM users u \
                 LEFT JOIN credentials c ON c.user_id = u.id WHERE u.external_user_id = ? \
                 ORDER BY c.created_at, c.credential_id",
                prefixed("u", user_columns!()),
                prefixed("c", credential_columns!()),
            ))
        });
        let rows = self
            .rows(
                "read user with credentials",
                pick(self.backend, text),
                args![external_user_id],
            )
            .await?;
        let mut user = None;
        let mut credentials = Vec::new();
        for row in rows {
            let mut parts = row
                .into_parts(&[USER_COLUMNS, CREDENTIAL_COLUMNS])
                .into_iter();
            let (Some(u), Some(c)) = (parts.next(), parts.next()) else {
                return Err(StoreError::Backend("a join row too short".into()));
            };
            if user.is_none() {
                user = Some(rows::user(&u)?);
            }
            if !c.is_null(0) {
                credentials.push(rows::credential(&c)?);
            }
        }
        Ok(user.map(|u| (u, credentials)))
    }

    async fn user_by_handle(&self, user_handle: &[u8]) -> Result<Option<UserRecord>, StoreError> {
        let q = (
            sql!(
                self.backend,
                concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users WHERE user_handle = ?"
                )
            ),
            args![user_handle],
        );
        self.one("read user by handle", q, rows::user).await
    }

    async fn ebt(&self, user_id: &str) -> Result<Option<EbtRecord>, StoreError> {
        let q = (
            sql!(
                self.backend,
                concat!("SELECT ", ebt_columns!(), " FROM ebts WHERE user_id = ?")
            ),
            args![user_id],
        );
        self.one("read ebt", q, rows::ebt).await
    }

    async fn ebts_not_under_key(&self, current: u32) -> Result<Vec<EbtRecord>, StoreError> {
        let q = (
            sql!(
                self.backend,
                concat!(
                    "SELECT ",
                    ebt_columns!(),
                    " FROM ebts WHERE key_version <> ? ORDER BY user_id"
                )
            ),
            args![i64::from(current)],
        );
        self.all("read ebts not under key", q, rows::ebt).await
    }

    async fn credential(
        &self,
        credential_id: &str,
    ) -> Result<Option<CredentialRecord>, StoreError> {
        let q = (
            sql!(
                self.backend,
                concat!(
                    "SELECT ",
                    credential_columns!(),
                    " FROM credentials WHERE credential_id = ?"
                )
            ),
            args![credential_id],
        );
        self.one("read credential", q, rows::credential).await
    }

    async fn credentials_of_user(
        &self,
        user_id: &str,
    ) -> Result<Vec<CredentialRecord>, StoreError> {
        let q = (
            sql!(
                self.backend,
                concat!(
                    "SELECT ",
                    credential_columns!(),
                    " FROM credentials WHERE user_id = ? ORDER BY created_at, credential_id"
                )
            ),
            args![user_id],
        );
        self.all("read credentials of user", q, rows::credential)
            .await
    }

    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let q = (
            sql!(
                self.backend,
                concat!("SELECT ", api_key_columns!(), " FROM api_keys WHERE id = ?")
            ),
            args![id],
        );
        self.one("read api key", q, rows::api_key).await
    }

    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let q = (
            sql!(
                self.backend,
                concat!(
                    "SELECT ",
                    api_key_columns!(),
                    " FROM api_keys ORDER BY created_at, id"
                )
            ),
            args![],
        );
        self.all("read api keys", q, rows::api_key).await
    }

    async fn identity_proofs_of_credential(
        &self,
        credential_id: &str,
    ) -> Result<Vec<IdentityProofRecord>, StoreError> {
        let q = (
            sql!(
                self.backend,
                "SELECT id, session_id, user_id, credential_id, jws, created_at \
             FROM identity_proofs WHERE credential_id = ? ORDER BY created_at, id"
            ),
            args![credential_id],
        );
        self.all("read identity proofs", q, crate::audit::identity_proof)
            .await
    }

    async fn identity_proofs_of_session(
        &self,
        session_id: &str,
    ) -> Result<Vec<IdentityProofRecord>, StoreError> {
        let q = (
            sql!(
                self.backend,
                "SELECT id, session_id, user_id, credential_id, jws, created_at \
             FROM identity_proofs WHERE session_id = ? ORDER BY created_at, id"
            ),
            args![session_id],
        );
        self.all("read identity proofs", q, crate::audit::identity_proof)
            .await
    }
}

#[async_trait]
impl AuditStore for SqlStore {
    async fn audit_head(&self) -> Result<(u64, String), StoreError> {
        let rows = self
            .rows(
                "read audit head",
                "SELECT last_seq, last_hash FROM audit_head WHERE id = 1",
                args![],
            )
            .await?;
        let bad = || StoreError::Backend("read audit head: no head row".into());
        let row = rows.first().ok_or_else(bad)?;
        let seq: i64 = row.try_get("last_seq").map_err(|_| bad())?;
        let hash: String = row.try_get("last_hash").map_err(|_| bad())?;
        Ok((
            u64::try_from(seq).map_err(|_| StoreError::Backend("audit head".into()))?,
            hash,
        ))
    }

    async fn integrate_audit(&self, wait: bool) -> Result<u64, StoreError> {
        self.integrate_all(wait).await
    }

    async fn audit_pending(&self) -> Result<(u64, Option<Millis>), StoreError> {
        let rows = self
            .rows(
                "count pending audit events",
                "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM audit_pending",
                args![],
            )
            .await?;
        let bad = || StoreError::Backend("count pending audit events: unreadable".into());
        let row = rows.first().ok_or_else(bad)?;
        let n: i64 = row.try_get("n").map_err(|_| bad())?;
        let oldest: Option<i64> = row.try_get("oldest").map_err(|_| bad())?;
        Ok((u64::try_from(n).map_err(|_| bad())?, oldest))
    }

    async fn audit_events(
        &self,
        query: &AuditQuery,
    ) -> Result<Vec<passbind_audit::AuditEvent>, StoreError> {
        let mut text = String::from("SELECT event FROM audit_events WHERE 1 = 1");
        if query.session_id.is_some() {
            text.push_str(" AND session_id = ?");
        }
        if query.event_type.is_some() {
            text.push_str(" AND event_type = ?");
        }
        if query.since_ms.is_some() {
            text.push_str(" AND time_ms >= ?");
        }
        if query.until_ms.is_some() {
            text.push_str(" AND time_ms <= ?");
        }
        if query.before_seq.is_some() {
            text.push_str(" AND seq < ?");
        }
        if query.after_seq.is_some() {
            text.push_str(" AND seq > ?");
        }
        text.push_str(if query.ascending {
            " ORDER BY seq ASC LIMIT ?"
        } else {
            " ORDER BY seq DESC LIMIT ?"
        });
        let text = match self.backend {
            Backend::Sqlite => text,
            Backend::Postgres => crate::sql::to_postgres(&text),
        };
        let seq = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let mut params = args![];
        if let Some(v) = &query.session_id {
            params.push(v.as_str().into());
        }
        if let Some(v) = &query.event_type {
            params.push(v.as_str().into());
        }
        if let Some(v) = query.since_ms {
            params.push(v.into());
        }
        if let Some(v) = query.until_ms {
            params.push(v.into());
        }
        if let Some(v) = query.before_seq {
            params.push(seq(v).into());
        }
        if let Some(v) = query.after_seq {
            params.push(seq(v).into());
        }
        params.push(i64::from(query.limit.clamp(1, 10_000)).into());
        self.all_heavy("read audit events", (&text, params), crate::audit::event)
            .await
    }

    async fn audit_hashes(&self, upto: u64) -> Result<Vec<String>, StoreError> {
        let q = (
            sql!(
                self.backend,
                "SELECT hash FROM audit_events WHERE seq <= ? ORDER BY seq"
            ),
            args![i64::try_from(upto).unwrap_or(i64::MAX)],
        );
        self.all_heavy("read audit hashes", q, crate::audit::hash)
            .await
    }

    async fn audit_checkpoints(&self) -> Result<Vec<passbind_audit::Checkpoint>, StoreError> {
        let q = (
            "SELECT tree_size, root_hash, time_ms, key_id, signature FROM audit_checkpoints \
             ORDER BY tree_size",
            args![],
        );
        self.all("read checkpoints", q, crate::audit::checkpoint)
            .await
    }

    async fn latest_audit_checkpoint(
        &self,
    ) -> Result<Option<(passbind_audit::Checkpoint, Vec<String>)>, StoreError> {
        let q = (
            "SELECT tree_size, root_hash, time_ms, key_id, signature, frontier \
             FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1",
            args![],
        );
        self.one(
            "read latest checkpoint",
            q,
            crate::audit::checkpoint_with_frontier,
        )
        .await
    }
}

#[async_trait]
impl OperatorStore for SqlStore {
    async fn commit_operator(
        &self,
        operator_writes: Vec<passbind_core::operators::OperatorWrite>,
        writes: Vec<Write>,
    ) -> Result<(), StoreError> {
        self.commit_operator_impl(operator_writes, writes).await
    }

    async fn operator_count(&self) -> Result<u64, StoreError> {
        self.operator_count_impl().await
    }

    async fn operator(
        &self,
        id: &str,
    ) -> Result<Option<passbind_core::operators::OperatorRecord>, StoreError> {
        self.operator_impl(false, id).await
    }

    async fn operator_by_name(
        &self,
        name: &str,
    ) -> Result<Option<passbind_core::operators::OperatorRecord>, StoreError> {
        self.operator_impl(true, name).await
    }

    async fn operator_credential(
        &self,
        credential_id: &str,
    ) -> Result<Option<passbind_core::operators::OperatorCredentialRecord>, StoreError> {
        self.operator_credential_impl(credential_id).await
    }

    async fn operator_session(
        &self,
        id_hash: &[u8],
    ) -> Result<Option<passbind_core::operators::OperatorSessionRecord>, StoreError> {
        self.operator_session_impl(id_hash).await
    }

    async fn setup_token(
        &self,
        hash: &[u8],
    ) -> Result<Option<passbind_core::operators::SetupTokenRecord>, StoreError> {
        self.setup_token_impl(hash).await
    }

    async fn operator_challenge(
        &self,
        id: &str,
    ) -> Result<Option<passbind_core::operators::ChallengeRecord>, StoreError> {
        self.operator_challenge_impl(id).await
    }
}

#[async_trait]
impl ManagementReads for SqlStore {
    async fn list_sessions(
        &self,
        filter: &passbind_core::management::SessionFilter,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        self.list_sessions_impl(filter).await
    }

    async fn session_counts(
        &self,
        since: Millis,
        until: Millis,
        bucket_ms: i64,
        now: Millis,
    ) -> Result<Vec<passbind_core::management::SessionCount>, StoreError> {
        self.session_counts_impl(since, until, bucket_ms, now).await
    }

    async fn search_users(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<passbind_core::management::UserSummary>, StoreError> {
        self.search_users_impl(prefix, after, limit).await
    }

    async fn management_totals(&self) -> Result<passbind_proto::management::Totals, StoreError> {
        self.management_totals_impl().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_widths_match_the_column_lists() {
        let count = |columns: &str| columns.split(',').count();
        assert_eq!(SESSION_COLUMNS, count(session_columns!()));
        assert_eq!(CREDENTIAL_COLUMNS, count(credential_columns!()));
        assert_eq!(USER_COLUMNS, count(user_columns!()));
        assert_eq!(prefixed("u", "id, user_handle"), "u.id, u.user_handle");
    }
}
