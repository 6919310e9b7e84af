//! Wiring at start: the operators' relying party on the dashboard's origin, the OIDC client,
//! the settings view, and the first setup link while no operator exists.

use super::oidc::{OidcClient, OidcConfig};
use super::{dashboard_origin, settings::settings_view, Management};
use crate::adapters::{SystemClock, SystemRng};
use crate::config::{Mode, Settings};
use crate::rp::WebauthnRp;
use anyhow::{bail, Context};
use passbind_core::operators::{OperatorConfig, Operators};
use passbind_core::ports::store::*;
use passbind_core::ports::RelyingParty;
use std::sync::Arc;
use url::Url;

/// The dashboard's state, and the one-time setup link when no operator exists yet.
pub async fn management(
    settings: &Settings,
    public_url: &Url,
    origins: &[String],
    store: Arc<dyn Store>,
    backend: &str,
) -> anyhow::Result<(Arc<Management>, Option<String>)> {
    let origin = dashboard_origin(public_url);
    let secure_cookies = origin.starts_with("https://");
    if settings.mode == Mode::Production && !secure_cookies {
        bail!("the dashboard needs an https PASSBIND_PUBLIC_URL in production");
    }
    let rp_id = match &settings.dashboard_rp_id {
        Some(id) if !id.is_empty() => id.clone(),
        _ => Url::parse(&origin)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "localhost".to_owned()),
    };
    let rp: Arc<dyn RelyingParty> = Arc::new(
        WebauthnRp::new(
            &rp_id,
            "Passbind dashboard",
            std::slice::from_ref(&origin),
            true,
        )
        .context("the dashboard's relying party (PASSBIND_DASHBOARD_RP_ID)")?,
    );
    let oidc = match (&settings.oidc_issuer, &settings.oidc_client_id) {
        (None, None) => None,
        (Some(_), None) | (None, Some(_)) => {
            bail!("PASSBIND_OIDC_ISSUER and PASSBIND_OIDC_CLIENT_ID go together")
        }
        (Some(issuer), Some(client_id)) => {
            if settings.mode == Mode::Production && issuer.scheme() != "https" {
                bail!("PASSBIND_OIDC_ISSUER must be https in production");
            }
            Some(OidcClient::new(OidcConfig {
                issuer: issuer.clone(),
                client_id: client_id.clone(),
                client_secret: settings
                    .oidc_client_secret
                    .as_ref()
                    .map(|s| s.0.clone())
                    .filter(|s| !s.is_empty()),
                audience: settings
                    .oidc_audience
                    .clone()
                    .filter(|a| !a.is_empty())
                    .unwrap_or_else(|| client_id.clone()),
                scopes: settings.oidc_scopes.clone(),
                redirect_uri: format!("{origin}/api/management/v1/auth/oidc/callback"),
            })?)
        }
    };
    let operators = Operators::new(
        store,
        Arc::new(SystemClock),
        Arc::new(SystemRng::new()),
        Some(rp),
        OperatorConfig {
            session_ttl_secs: settings.operator_session_ttl_seconds.max(60),
            setup_token_ttl_secs: settings.operator_setup_ttl_seconds.max(60),
            ..OperatorConfig::default()
        },
    );
    let view = settings_view(
        settings,
        public_url.as_str(),
        origins,
        &origin,
        &rp_id,
        backend,
    );
    let management = Arc::new(Management {
        operators,
        oidc,
        settings: view,
        origin,
        secure_cookies,
    });
    let link = match management.operators.first_start_token().await {
        Ok(Some(t)) => Some(management.setup_url(&t.token)),
        Ok(None) => None,
        Err(e) => bail!("issuing the first operator's setup link: {e}"),
    };
    if let Some(link) = &link {
        if settings.mode == Mode::Production {
            // The CLI prints it in dev; in production the log is where an operator looks.
            tracing::warn!(
                setup_link = %link,
                "no dashboard operator exists yet: open this one-time link to enrol the first \
                 operator's passkey"
            );
        }
    }
    Ok((management, link))
}
