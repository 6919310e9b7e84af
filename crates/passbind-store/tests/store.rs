//! The store against real databases. Every case in `store/cases.rs` is written once and runs on
//! both backends: a fresh SQLite file and a fresh PostgreSQL schema (see
//! `passbind_store::testing`; PostgreSQL comes from `PASSBIND_TEST_DATABASE_URL`, by default
//! the local server, and its absence fails the tests). Backend-specific behaviour (a reopened
//! SQLite file, its pragmas and busy timeout, in-memory SQLite, PostgreSQL connection errors)
//! is tested in `store/sqlite_only.rs` and `store/postgres_only.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "store/cases.rs"]
mod cases;
#[path = "store/fixtures.rs"]
mod fixtures;
#[path = "store/management.rs"]
mod management;
#[path = "store/postgres_only.rs"]
mod postgres_only;
#[path = "store/sqlite_only.rs"]
mod sqlite_only;

/// Instantiates each case for both backends: `sqlite::<case>` and `postgres::<case>`.
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (store, _dir) = passbind_store::testing::fresh_sqlite().await;
                    assert_eq!(store.backend(), "sqlite");
                    crate::cases::$case(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let store = passbind_store::testing::fresh_postgres().await;
                    assert_eq!(store.backend(), "postgres");
                    crate::cases::$case(store).await;
                }
            )*
        }
    };
}

on_both_backends!(
    ping_answers,
    empty_commit_is_a_no_op,
    migrations_are_idempotent,
    pending_migrations_are_reported,
    // users
    user_insert_and_lookups,
    insert_user_duplicate_external_id,
    insert_user_duplicate_id_or_handle,
    mark_user_erased,
    mark_absent_user_erased,
    // sessions
    session_insert_and_lookups,
    session_read_with_its_credential,
    user_read_with_credentials,
    insert_session_duplicate_id,
    insert_session_duplicate_idv_run,
    update_session,
    update_session_stale_version,
    update_absent_session,
    update_session_bad_version_step,
    update_session_duplicate_idv_run,
    sessions_of_user_newest_first_limited,
    sessions_awaiting_idv_filters_and_orders,
    sessions_awaiting_idv_pages_with_a_cursor,
    // biometric tokens
    ebt_insert_and_read,
    insert_ebt_duplicate,
    insert_ebt_for_absent_user,
    replace_ebt_key,
    replace_absent_ebt_key,
    delete_ebt,
    ebts_not_under_key,
    // credentials
    credential_insert_and_read,
    insert_credential_duplicate,
    insert_credential_for_absent_user,
    credentials_of_user_oldest_first,
    update_credential_use,
    update_credential_use_absent_or_revoked,
    revoke_credential,
    revoke_credential_absent_or_revoked,
    revoke_user_credentials_keep,
    revoke_user_credentials_all,
    // identity-verification events
    record_idv_event,
    record_idv_event_duplicate,
    // API keys
    api_key_insert_read_list,
    insert_api_key_duplicate,
    revoke_api_key,
    revoke_api_key_absent_or_revoked,
    // secrets
    secret_insert_and_read,
    failures_recorded_and_counted_since,
    failures_roll_back_with_the_change,
    audit_appends_chain_and_read_back,
    audit_appends_race_without_gaps,
    audit_sequencers_race_with_writers,
    checkpoints_and_identity_proofs,
    checkpoint_signers_race,
    counter_kept_at_maximum,
    counter_regression_refused_at_commit,
    duplicate_completion_is_a_session_conflict,
    group_commit_isolates_failed_changes,
    insert_secret_duplicate,
    consume_secret,
    consume_secret_absent_or_consumed,
    // atomicity
    rollback_on_last_write_not_found,
    rollback_on_last_write_duplicate,
    rollback_on_stale_session_version,
    rollback_on_constraint_error,
    store_usable_after_conflict,
    // races
    race_update_session,
    race_record_idv_event,
    race_consume_secret,
    race_insert_user,
    race_revoke_credential,
    // corrupt rows
    corrupt_session_state,
    corrupt_session_flow,
    corrupt_session_idv_failure,
    corrupt_session_data,
    corrupt_credential_transports,
    corrupt_api_key_scopes,
);
