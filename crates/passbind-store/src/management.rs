//! The management dashboard's reads (session lists and counts, user search, totals) and the
//! operator tables (`0005_operators.sql`): operators, their passkeys and sessions, setup tokens
//! and ceremony state. Same SQL on both backends, like the rest of the store.
//!
//! Dynamic filters are built as text with `?` placeholders and rewritten for PostgreSQL once
//! per call ([`crate::sql::to_postgres`]); every value is bound, none is spliced in.

use crate::db::{args, Exec, FromValue, Row, Value};
use crate::error::corrupt;
use crate::sql::sql;
use crate::writes::Stmt;
use crate::writes::{require, run};
use crate::{writes, Backend, SqlStore};
use passbind_core::management::{SessionCount, SessionFilter, UserSummary};
use passbind_core::model::{Conflict, Millis, SessionRecord, StoreError, Write};
use passbind_core::operators::{
    ChallengeRecord, OperatorCredentialRecord, OperatorRecord, OperatorSessionRecord,
    OperatorWrite, SetupTokenRecord,
};
use passbind_proto::management::Totals;
use passbind_proto::session::{Flow, SessionState};

/// The live states, as SQL text (constants: nothing from a request).
const LIVE_STATES: &str = "('created', 'idv_pending', 'capture_failed', 'idv_passed')";

fn text_for(b: Backend, text: String) -> String {
    match b {
        Backend::Sqlite => text,
        Backend::Postgres => crate::sql::to_postgres(&text),
    }
}

fn get<T: FromValue>(
    row: &Row,
    table: &'static str,
    column: &'static str,
) -> Result<T, StoreError> {
    row.get::<T>(column)
        .ok_or_else(|| corrupt(table, column, "unexpected type or null"))
}

fn count(row: &Row, table: &'static str, column: &'static str) -> Result<u64, StoreError> {
    let n: i64 = get(row, table, column)?;
    u64::try_from(n).map_err(|_| corrupt(table, column, "negative count"))
}

fn flag(row: &Row, table: &'static str, column: &'static str) -> Result<bool, StoreError> {
    match get::<i64>(row, table, column)? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(corrupt(table, column, "not a 0/1 boolean")),
    }
}

impl SqlStore {
    /// The rows of a dashboard list (may be many: see [`SqlStore::rows_heavy`]).
    async fn list(
        &self,
        context: &'static str,
        (sql, args): Stmt<'_>,
    ) -> Result<Vec<Row>, StoreError> {
        self.rows_heavy(context, sql, args).await
    }

    async fn row(
        &self,
        context: &'static str,
        (sql, args): Stmt<'_>,
    ) -> Result<Option<Row>, StoreError> {
        Ok(self.rows(context, sql, args).await?.into_iter().next())
    }

    pub(crate) async fn list_sessions_impl(
        &self,
        f: &SessionFilter,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let mut text = format!(
            "SELECT {} FROM sessions WHERE 1 = 1",
            crate::rows::session_columns!()
        );
        if f.flow.is_some() {
            text.push_str(" AND flow = ?");
        }
        match f.state {
            None => {}
            Some(SessionState::Expired) => text.push_str(&format!(
                " AND (state = 'expired' OR (state IN {LIVE_STATES} AND expires_at <= ?))"
            )),
            Some(s) if s.is_terminal() => text.push_str(" AND state = ?"),
            Some(_) => text.push_str(" AND state = ? AND expires_at > ?"),
        }
        if f.since.is_some() {
            text.push_str(" AND created_at >= ?");
        }
        if f.until.is_some() {
            text.push_str(" AND created_at < ?");
        }
        if f.before.is_some() {
            text.push_str(" AND (created_at < ? OR (created_at = ? AND id < ?))");
        }
        text.push_str(" ORDER BY created_at DESC, id DESC LIMIT ?");
        let text = text_for(self.backend, text);
        let mut params: Vec<Value<'_>> = args![];
        if let Some(flow) = f.flow {
            params.push(Value::from(flow.as_str()));
        }
        match f.state {
            None => {}
            Some(SessionState::Expired) => params.push(Value::from(f.now)),
            Some(s) if s.is_terminal() => params.push(Value::from(s.as_str())),
            Some(s) => params.extend(args![s.as_str(), f.now]),
        }
        if let Some(v) = f.since {
            params.push(Value::from(v));
        }
        if let Some(v) = f.until {
            params.push(Value::from(v));
        }
        if let Some((at, id)) = &f.before {
            params.extend(args![*at, *at, id.as_str()]);
        }
        params.push(Value::from(i64::from(f.limit)));
        self.list("list sessions", (&text, params))
            .await?
            .iter()
            .map(crate::rows::session)
            .collect()
    }

    pub(crate) async fn session_counts_impl(
        &self,
        since: Millis,
        until: Millis,
        bucket_ms: i64,
        now: Millis,
    ) -> Result<Vec<SessionCount>, StoreError> {
        if bucket_ms <= 0 {
            return Err(StoreError::Backend(
                "session counts: the bucket must be positive".to_owned(),
            ));
        }
        // Grouped by position, so that the parameter in the outcome's CASE is not repeated in
        // GROUP BY (PostgreSQL would see two different expressions).
        let q = (
            sql!(
                self.backend,
                "SELECT created_at - (created_at % ?) AS bucket, flow, \
             CASE WHEN state = 'completed' THEN 'completed' \
                  WHEN state = 'idv_failed' THEN 'failed' \
                  WHEN state = 'cancelled' THEN 'cancelled' \
                  WHEN state = 'expired' OR expires_at <= ? THEN 'expired' \
                  WHEN state = 'idv_passed' THEN 'passed' \
                  ELSE 'pending' END AS outcome, \
             CASE WHEN state = 'idv_failed' THEN COALESCE(idv_failure, 'unknown') \
                  ELSE '' END AS reason, \
             COUNT(*) AS n \
             FROM sessions WHERE created_at >= ? AND created_at < ? \
             GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
            ),
            args![bucket_ms, now, since, until],
        );
        self.list("count sessions", q)
            .await?
            .iter()
            .map(|r| {
                let flow: String = get(r, "sessions", "flow")?;
                let reason: String = get(r, "sessions", "reason")?;
                Ok(SessionCount {
                    bucket_start: get(r, "sessions", "bucket")?,
                    flow: Flow::parse(&flow)
                        .ok_or_else(|| corrupt("sessions", "flow", "unknown flow"))?,
                    outcome: get(r, "sessions", "outcome")?,
                    reason: (!reason.is_empty()).then_some(reason),
                    count: count(r, "sessions", "n")?,
                })
            })
            .collect()
    }

    pub(crate) async fn search_users_impl(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<UserSummary>, StoreError> {
        // `substr` compares bytes exactly on both backends (LIKE is case-insensitive on SQLite
        // and treats `_` as a wildcard); external ids are ASCII, so characters are bytes.
        let mut text = String::from(
            "SELECT u.external_user_id, u.created_at, u.erased_at, \
             (SELECT COUNT(*) FROM credentials c \
              WHERE c.user_id = u.id AND c.revoked_at IS NULL) AS active_credentials, \
             (SELECT COUNT(*) FROM ebts e WHERE e.user_id = u.id) AS ebts \
             FROM users u WHERE 1 = 1",
        );
        if !prefix.is_empty() {
            text.push_str(" AND substr(u.external_user_id, 1, CAST(? AS INTEGER)) = ?");
        }
        if after.is_some() {
            text.push_str(" AND u.external_user_id > ?");
        }
        text.push_str(" ORDER BY u.external_user_id LIMIT ?");
        let text = text_for(self.backend, text);
        let mut params: Vec<Value<'_>> = args![];
        if !prefix.is_empty() {
            let len = i64::try_from(prefix.len()).unwrap_or(i64::MAX);
            params.extend(args![len, prefix]);
        }
        if let Some(a) = after {
            params.push(Value::from(a));
        }
        params.push(Value::from(i64::from(limit)));
        self.list("search users", (&text, params))
            .await?
            .iter()
            .map(|r| {
                Ok(UserSummary {
                    external_user_id: get(r, "users", "external_user_id")?,
                    created_at: get(r, "users", "created_at")?,
                    erased_at: get(r, "users", "erased_at")?,
                    active_credentials: count(r, "credentials", "active_credentials")?,
                    has_ebt: count(r, "ebts", "ebts")? > 0,
                })
            })
            .collect()
    }

    pub(crate) async fn management_totals_impl(&self) -> Result<Totals, StoreError> {
        let q = (
            "SELECT \
             (SELECT COUNT(*) FROM users WHERE erased_at IS NULL) AS users, \
             (SELECT COUNT(*) FROM users WHERE erased_at IS NOT NULL) AS erased_users, \
             (SELECT COUNT(*) FROM credentials c JOIN users u ON u.id = c.user_id \
              WHERE c.revoked_at IS NULL AND u.erased_at IS NULL) AS active_credentials, \
             (SELECT COUNT(*) FROM credentials WHERE revoked_at IS NOT NULL) AS revoked, \
             (SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL) AS api_keys, \
             (SELECT COUNT(*) FROM operators WHERE disabled_at IS NULL) AS operators",
            args![],
        );
        let r = self
            .row("count totals", q)
            .await?
            .ok_or_else(|| StoreError::Backend("count totals: no row".to_owned()))?;
        Ok(Totals {
            users: count(&r, "users", "users")?,
            erased_users: count(&r, "users", "erased_users")?,
            active_credentials: count(&r, "credentials", "active_credentials")?,
            revoked_credentials: count(&r, "credentials", "revoked")?,
            active_api_keys: count(&r, "api_keys", "api_keys")?,
            operators: count(&r, "operators", "operators")?,
        })
    }

    pub(crate) async fn operator_count_impl(&self) -> Result<u64, StoreError> {
        let q = (
            "SELECT COUNT(*) AS n FROM operators WHERE disabled_at IS NULL",
            args![],
        );
        let r = self
            .row("count operators", q)
            .await?
            .ok_or_else(|| StoreError::Backend("count operators: no row".to_owned()))?;
        count(&r, "operators", "n")
    }

    pub(crate) async fn operator_impl(
        &self,
        by_name: bool,
        key: &str,
    ) -> Result<Option<OperatorRecord>, StoreError> {
        let q: Stmt<'_> = if by_name {
            (
                sql!(
                    self.backend,
                    "SELECT id, name, user_handle, created_at, disabled_at FROM operators \
                 WHERE name = ?"
                ),
                args![],
            )
        } else {
            (
                sql!(
                    self.backend,
                    "SELECT id, name, user_handle, created_at, disabled_at FROM operators \
                 WHERE id = ?"
                ),
                args![],
            )
        };
        let (sql, _) = q;
        self.row("read operator", (sql, args![key]))
            .await?
            .map(|r| {
                Ok(OperatorRecord {
                    id: get(&r, "operators", "id")?,
                    name: get(&r, "operators", "name")?,
                    user_handle: get(&r, "operators", "user_handle")?,
                    created_at: get(&r, "operators", "created_at")?,
                    disabled_at: get(&r, "operators", "disabled_at")?,
                })
            })
            .transpose()
    }

    pub(crate) async fn operator_credential_impl(
        &self,
        credential_id: &str,
    ) -> Result<Option<OperatorCredentialRecord>, StoreError> {
        let q = (
            sql!(
            self.backend,
            "SELECT credential_id, operator_id, public_key, sign_count, aaguid, backup_eligible, \
             backed_up, created_at, last_used_at, revoked_at FROM operator_credentials \
             WHERE credential_id = ?"
        ),
            args![credential_id],
        );
        const T: &str = "operator_credentials";
        self.row("read operator credential", q)
            .await?
            .map(|r| {
                Ok(OperatorCredentialRecord {
                    credential_id: get(&r, T, "credential_id")?,
                    operator_id: get(&r, T, "operator_id")?,
                    public_key: get(&r, T, "public_key")?,
                    sign_count: get(&r, T, "sign_count")?,
                    aaguid: get(&r, T, "aaguid")?,
                    backup_eligible: flag(&r, T, "backup_eligible")?,
                    backed_up: flag(&r, T, "backed_up")?,
                    created_at: get(&r, T, "created_at")?,
                    last_used_at: get(&r, T, "last_used_at")?,
                    revoked_at: get(&r, T, "revoked_at")?,
                })
            })
            .transpose()
    }

    pub(crate) async fn operator_session_impl(
        &self,
        id_hash: &[u8],
    ) -> Result<Option<OperatorSessionRecord>, StoreError> {
        let q = (
            sql!(
            self.backend,
            "SELECT id_hash, subject, display_name, method, created_at, expires_at, revoked_at \
             FROM operator_sessions WHERE id_hash = ?"
        ),
            args![id_hash],
        );
        const T: &str = "operator_sessions";
        self.row("read operator session", q)
            .await?
            .map(|r| {
                Ok(OperatorSessionRecord {
                    id_hash: get(&r, T, "id_hash")?,
                    subject: get(&r, T, "subject")?,
                    display_name: get(&r, T, "display_name")?,
                    method: get(&r, T, "method")?,
                    created_at: get(&r, T, "created_at")?,
                    expires_at: get(&r, T, "expires_at")?,
                    revoked_at: get(&r, T, "revoked_at")?,
                })
            })
            .transpose()
    }

    pub(crate) async fn setup_token_impl(
        &self,
        hash: &[u8],
    ) -> Result<Option<SetupTokenRecord>, StoreError> {
        let q = (
            sql!(
                self.backend,
                "SELECT hash, created_by, created_at, expires_at, consumed_at \
             FROM operator_setup_tokens WHERE hash = ?"
            ),
            args![hash],
        );
        const T: &str = "operator_setup_tokens";
        self.row("read setup token", q)
            .await?
            .map(|r| {
                Ok(SetupTokenRecord {
                    hash: get(&r, T, "hash")?,
                    created_by: get(&r, T, "created_by")?,
                    created_at: get(&r, T, "created_at")?,
                    expires_at: get(&r, T, "expires_at")?,
                    consumed_at: get(&r, T, "consumed_at")?,
                })
            })
            .transpose()
    }

    pub(crate) async fn operator_challenge_impl(
        &self,
        id: &str,
    ) -> Result<Option<ChallengeRecord>, StoreError> {
        let q = (
            sql!(
                self.backend,
                "SELECT id, kind, state, created_at, expires_at, consumed_at \
             FROM operator_challenges WHERE id = ?"
            ),
            args![id],
        );
        const T: &str = "operator_challenges";
        self.row("read operator challenge", q)
            .await?
            .map(|r| {
                let state: String = get(&r, T, "state")?;
                Ok(ChallengeRecord {
                    id: get(&r, T, "id")?,
                    kind: get(&r, T, "kind")?,
                    state: serde_json::from_str(&state)
                        .map_err(|_| corrupt(T, "state", "not JSON"))?,
                    created_at: get(&r, T, "created_at")?,
                    expires_at: get(&r, T, "expires_at")?,
                    consumed_at: get(&r, T, "consumed_at")?,
                })
            })
            .transpose()
    }

    /// Operator writes, then the other writes (audit appends last), in one transaction.
    pub(crate) async fn commit_operator_impl(
        &self,
        ops: Vec<OperatorWrite>,
        writes_: Vec<Write>,
    ) -> Result<(), StoreError> {
        writes::validate(&writes_)?;
        if ops.is_empty() && writes_.is_empty() {
            return Ok(());
        }
        self.run_change(ops, writes_).await
    }
}

pub(crate) async fn apply_operator(
    b: Backend,
    conn: &mut dyn Exec,
    w: &OperatorWrite,
) -> Result<(), StoreError> {
    use Conflict::*;
    match w {
        OperatorWrite::InsertOperator(o) => {
            let q = (
                sql!(
                    b,
                    "INSERT INTO operators (id, name, user_handle, created_at, disabled_at) \
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
                ),
                args![
                    o.id.as_str(),
                    o.name.as_str(),
                    o.user_handle.as_slice(),
                    o.created_at,
                    o.disabled_at
                ],
            );
            if run(conn, "insert operator", DuplicateId, q).await? == 0 {
                let taken = crate::writes::exists(
                    conn,
                    "insert operator",
                    (
                        sql!(b, "SELECT 1 FROM operators WHERE name = ?"),
                        args![o.name.as_str()],
                    ),
                )
                .await?;
                return Err(StoreError::Conflict(if taken {
                    DuplicateUser
                } else {
                    DuplicateId
                }));
            }
            Ok(())
        }
        OperatorWrite::InsertCredential(c) => {
            let q = (
                sql!(
                    b,
                    "INSERT INTO operator_credentials (credential_id, operator_id, public_key, \
                 sign_count, aaguid, backup_eligible, backed_up, created_at, last_used_at, \
                 revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
                ),
                args![
                    c.credential_id.as_str(),
                    c.operator_id.as_str(),
                    c.public_key.as_slice(),
                    c.sign_count,
                    c.aaguid.as_deref(),
                    crate::rows::flag(c.backup_eligible),
                    crate::rows::flag(c.backed_up),
                    c.created_at,
                    c.last_used_at,
                    c.revoked_at
                ],
            );
            require(
                run(conn, "insert operator credential", DuplicateCredential, q).await?,
                DuplicateCredential,
            )
        }
        OperatorWrite::UpdateCredentialUse {
            credential_id,
            sign_count,
            backed_up,
            at,
        } => {
            let q = (
                sql!(
                b,
                "UPDATE operator_credentials SET sign_count = ?, backed_up = ?, last_used_at = ? \
                 WHERE credential_id = ? AND revoked_at IS NULL"
            ),
                args![
                    *sign_count,
                    crate::rows::flag(*backed_up),
                    *at,
                    credential_id.as_str()
                ],
            );
            require(
                run(conn, "update operator credential", DuplicateId, q).await?,
                NotFound,
            )
        }
        OperatorWrite::InsertSession(s) => {
            let q = (
                sql!(
                    b,
                    "INSERT INTO operator_sessions (id_hash, subject, display_name, method, \
                 created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT DO NOTHING"
                ),
                args![
                    s.id_hash.as_slice(),
                    s.subject.as_str(),
                    s.display_name.as_str(),
                    s.method.as_str(),
                    s.created_at,
                    s.expires_at,
                    s.revoked_at
                ],
            );
            require(
                run(conn, "insert operator session", DuplicateId, q).await?,
                DuplicateId,
            )
        }
        OperatorWrite::RevokeSession { id_hash, at } => {
            let q = (
                sql!(
                    b,
                    "UPDATE operator_sessions SET revoked_at = ? \
                 WHERE id_hash = ? AND revoked_at IS NULL"
                ),
                args![*at, id_hash.as_slice()],
            );
            run(conn, "revoke operator session", DuplicateId, q)
                .await
                .map(drop)
        }
        OperatorWrite::InsertSetupToken(t) => {
            let q = (
                sql!(
                    b,
                    "INSERT INTO operator_setup_tokens (hash, created_by, created_at, expires_at, \
                 consumed_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
                ),
                args![
                    t.hash.as_slice(),
                    t.created_by.as_str(),
                    t.created_at,
                    t.expires_at,
                    t.consumed_at
                ],
            );
            require(
                run(conn, "insert setup token", DuplicateId, q).await?,
                DuplicateId,
            )
        }
        OperatorWrite::ConsumeSetupToken { hash, at } => {
            let q = (
                sql!(
                    b,
                    "UPDATE operator_setup_tokens SET consumed_at = ? \
                 WHERE hash = ? AND consumed_at IS NULL AND expires_at > ?"
                ),
                args![*at, hash.as_slice(), *at],
            );
            require(
                run(conn, "consume setup token", DuplicateId, q).await?,
                NotFound,
            )
        }
        OperatorWrite::InsertChallenge(c) => {
            // Sign-in ceremonies can be started by anyone: what expired over an hour ago goes,
            // so that the table stays the size of the ceremonies in flight (and this scan
            // stays small).
            let q = (
                sql!(b, "DELETE FROM operator_challenges WHERE expires_at < ?"),
                args![c.created_at.saturating_sub(3_600_000)],
            );
            run(conn, "delete expired challenges", DuplicateId, q).await?;
            let state = serde_json::to_string(&c.state).map_err(|_| {
                StoreError::Backend("cannot encode ceremony state as JSON".to_owned())
            })?;
            let q = (
                sql!(
                    b,
                    "INSERT INTO operator_challenges (id, kind, state, created_at, expires_at, \
                 consumed_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
                ),
                args![
                    c.id.as_str(),
                    c.kind.as_str(),
                    state,
                    c.created_at,
                    c.expires_at,
                    c.consumed_at
                ],
            );
            require(
                run(conn, "insert operator challenge", DuplicateId, q).await?,
                DuplicateId,
            )
        }
        OperatorWrite::ConsumeChallenge { id, at } => {
            let q = (
                sql!(
                    b,
                    "UPDATE operator_challenges SET consumed_at = ? \
                 WHERE id = ? AND consumed_at IS NULL AND expires_at > ?"
                ),
                args![*at, id.as_str(), *at],
            );
            require(
                run(conn, "consume operator challenge", DuplicateId, q).await?,
                NotFound,
            )
        }
    }
}
