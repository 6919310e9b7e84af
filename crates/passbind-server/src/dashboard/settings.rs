//! The effective configuration as the dashboard shows it: values of plain settings, and for a
//! secret only whether it is set (`<redacted>`), never its value.

use crate::config::{Mode, RpModeSetting, Secret, Settings};
use passbind_proto::management::{SettingView, SettingsGroup, SettingsView};

fn plain(name: &str, value: impl ToString) -> SettingView {
    SettingView {
        name: name.to_owned(),
        value: Some(value.to_string()),
        secret: false,
    }
}

fn optional(name: &str, value: Option<impl ToString>) -> SettingView {
    SettingView {
        name: name.to_owned(),
        value: value.map(|v| v.to_string()),
        secret: false,
    }
}

fn secret(name: &str, value: &Option<Secret>) -> SettingView {
    SettingView {
        name: name.to_owned(),
        value: value
            .as_ref()
            .filter(|s| !s.0.is_empty())
            .map(|_| "<redacted>".to_owned()),
        secret: true,
    }
}

fn group(title: &str, settings: Vec<SettingView>) -> SettingsGroup {
    SettingsGroup {
        title: title.to_owned(),
        settings,
    }
}

/// What is in effect. `origins` are the relying party's (defaults applied); `public_url` and
/// `dashboard_origin` as computed at start; `backend` the database in use.
pub fn settings_view(
    s: &Settings,
    public_url: &str,
    origins: &[String],
    dashboard_origin: &str,
    dashboard_rp_id: &str,
    backend: &str,
) -> SettingsView {
    let workflow = |v: &Option<String>| {
        v.clone().or_else(|| {
            (s.idv_provider == "simulator").then(|| "(the simulator's default)".to_owned())
        })
    };
    SettingsView {
        groups: vec![
            group(
                "Server",
                vec![
                    plain(
                        "PASSBIND_MODE",
                        match s.mode {
                            Mode::Dev => "dev",
                            Mode::Production => "production",
                        },
                    ),
                    plain("PASSBIND_LISTEN", s.listen),
                    plain("PASSBIND_PUBLIC_URL", public_url),
                    plain("database backend", backend),
                    // May carry a password: shown only as set or not.
                    secret("PASSBIND_DATABASE_URL", &s.database_url),
                    plain("PASSBIND_MAX_BODY_BYTES", s.max_body_bytes),
                ],
            ),
            group(
                "Relying party (WebAuthn)",
                vec![
                    plain(
                        "PASSBIND_RP_MODE",
                        match s.rp_mode {
                            RpModeSetting::Builtin => "builtin",
                            RpModeSetting::External => "external",
                        },
                    ),
                    plain("PASSBIND_RP_ID", &s.rp_id),
                    plain("PASSBIND_RP_NAME", &s.rp_name),
                    plain("PASSBIND_RP_ORIGINS", origins.join(", ")),
                    plain(
                        "PASSBIND_REQUIRE_USER_VERIFICATION",
                        s.require_user_verification,
                    ),
                    plain(
                        "PASSBIND_REJECT_COUNTER_REGRESSION",
                        s.reject_counter_regression,
                    ),
                ],
            ),
            group(
                "Identity verification",
                vec![
                    plain("PASSBIND_IDV_PROVIDER", &s.idv_provider),
                    optional(
                        "BIOMETRIC_PASSKEY_IDV_REGISTRATION_WORKFLOW_ID",
                        workflow(&s.registration_workflow_id),
                    ),
                    optional(
                        "BIOMETRIC_PASSKEY_IDV_STEP_UP_WORKFLOW_ID",
                        workflow(&s.step_up_workflow_id),
                    ),
                    optional(
                        "BIOMETRIC_PASSKEY_IDV_RECOVERY_VERIFY_WORKFLOW_ID",
                        workflow(&s.recovery_workflow_id),
                    ),
                    optional(
                        "PASSBIND_ONFIDO_BASE_URL",
                        (s.idv_provider == "onfido").then(|| {
                            s.onfido_base_url
                                .as_ref()
                                .map(|u| u.to_string())
                                .unwrap_or_else(|| s.onfido_region.base_url().to_owned())
                        }),
                    ),
                    secret("PASSBIND_ONFIDO_API_TOKEN", &s.onfido_api_token),
                    optional("PASSBIND_ONFIDO_CLIENT_ID", s.onfido_client_id.as_ref()),
                    secret("PASSBIND_ONFIDO_CLIENT_SECRET", &s.onfido_client_secret),
                    secret("PASSBIND_ONFIDO_WEBHOOK_TOKEN", &s.onfido_webhook_token),
                    optional("PASSBIND_WITNESS_URL", s.witness_url.as_ref()),
                    secret("PASSBIND_WITNESS_SECRET", &s.witness_secret),
                    plain("PASSBIND_IDV_TIMEOUT_SECONDS", s.idv_timeout_seconds),
                    plain("PASSBIND_IDV_MAX_RETRIES", s.idv_max_retries),
                    plain(
                        "PASSBIND_IDV_RECONCILE_INTERVAL_SECONDS",
                        s.idv_reconcile_interval_seconds,
                    ),
                ],
            ),
            group(
                "Lifetimes and limits",
                vec![
                    plain("PASSBIND_SESSION_TTL_SECONDS", s.session_ttl_seconds),
                    plain(
                        "PASSBIND_SESSION_TTL_MIN_SECONDS",
                        s.session_ttl_min_seconds,
                    ),
                    plain(
                        "PASSBIND_SESSION_TTL_MAX_SECONDS",
                        s.session_ttl_max_seconds,
                    ),
                    plain("PASSBIND_HANDOFF_TTL_SECONDS", s.handoff_ttl_seconds),
                    plain(
                        "PASSBIND_CONTINUATION_TTL_SECONDS",
                        s.continuation_ttl_seconds,
                    ),
                    plain("PASSBIND_STEP_UP_MAX_CAPTURES", s.step_up_max_captures),
                    plain("PASSBIND_LOCKOUT_THRESHOLD", s.lockout_threshold),
                    plain("PASSBIND_LOCKOUT_WINDOW_SECONDS", s.lockout_window_seconds),
                    plain(
                        "PASSBIND_LOCKOUT_DURATION_SECONDS",
                        s.lockout_duration_seconds,
                    ),
                    plain(
                        "PASSBIND_RECOVERY_REVOKES_OTHER_CREDENTIALS",
                        s.recovery_revokes_other_credentials,
                    ),
                ],
            ),
            group(
                "Keys",
                vec![
                    secret("PASSBIND_KEYRING", &s.keyring),
                    secret("PASSBIND_USER_REF_KEY", &s.user_ref_key),
                ],
            ),
            group(
                "Audit trail",
                vec![
                    secret("PASSBIND_AUDIT_SIGNING_KEY", &s.audit_signing_key),
                    plain(
                        "PASSBIND_AUDIT_CHECKPOINT_EVENTS",
                        s.audit_checkpoint_events,
                    ),
                    plain(
                        "PASSBIND_AUDIT_CHECKPOINT_SECONDS",
                        s.audit_checkpoint_seconds,
                    ),
                    plain("PASSBIND_AUDIT_INTEGRATE_MS", s.audit_integrate_ms),
                    plain("PASSBIND_API_KEY_CACHE_MS", s.api_key_cache_ms),
                ],
            ),
            group(
                "Dashboard",
                vec![
                    plain("dashboard origin", dashboard_origin),
                    plain("PASSBIND_DASHBOARD_RP_ID", dashboard_rp_id),
                    plain(
                        "PASSBIND_OPERATOR_SESSION_TTL_SECONDS",
                        s.operator_session_ttl_seconds,
                    ),
                    plain(
                        "PASSBIND_OPERATOR_SETUP_TTL_SECONDS",
                        s.operator_setup_ttl_seconds,
                    ),
                    optional("PASSBIND_OIDC_ISSUER", s.oidc_issuer.as_ref()),
                    optional("PASSBIND_OIDC_CLIENT_ID", s.oidc_client_id.as_ref()),
                    secret("PASSBIND_OIDC_CLIENT_SECRET", &s.oidc_client_secret),
                    optional(
                        "PASSBIND_OIDC_AUDIENCE",
                        s.oidc_audience.as_ref().or(s.oidc_client_id.as_ref()),
                    ),
                    plain("PASSBIND_OIDC_SCOPES", &s.oidc_scopes),
                ],
            ),
        ],
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        let mut s = Settings::for_tests("/tmp/x".into(), Some("postgres://u:hunter2@h/db".into()));
        s.keyring = Some(Secret("1:c2VjcmV0".into()));
        s.oidc_client_secret = Some(Secret("oidc-secret-value".into()));
        let view = settings_view(
            &s,
            "http://x",
            &[],
            "http://localhost:1",
            "localhost",
            "sqlite",
        );
        let text = serde_json::to_string(&view).unwrap();
        for leaked in ["hunter2", "c2VjcmV0", "oidc-secret-value"] {
            assert!(!text.contains(leaked), "{leaked} leaked");
        }
        assert!(text.contains("<redacted>"));
        assert!(text.contains("PASSBIND_RP_ID"));
    }
}
