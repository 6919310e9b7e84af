//! Start-up: settings are checked, keys loaded, the database opened (and migrated in dev), the
//! IDV provider and relying party wired, and the server bound.

use crate::adapters::{SystemClock, SystemRng};
use crate::config::{Mode, RpModeSetting, Settings};
use crate::keys::{self, KeyMaterial};
use crate::rp::WebauthnRp;
use anyhow::{bail, Context};
use passbind_core::auth::SCOPES;
use passbind_core::ports::IdvProvider;
use passbind_core::{Engine, EngineConfig, Keys, RpMode};
use passbind_idv::simulator::{self, SimulatorConfig};
use passbind_idv::studio::{StudioClient, StudioConfig, WorkflowIds};
use passbind_store::{ConnectOptions, SqlStore};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use url::Url;

/// The simulator's mount point on the dev server, and its workflow ids.
pub const SIMULATOR_PATH: &str = "/simulator/v3.6";
const SIM_WORKFLOW_REGISTRATION: &str = "00000000-0000-4000-8000-000000000001";
const SIM_WORKFLOW_VERIFY: &str = "00000000-0000-4000-8000-000000000002";

/// A started server.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub public_url: Url,
    pub engine: Arc<Engine>,
    /// The API key created at the first dev start (shown once), if one was created.
    pub first_api_key: Option<String>,
    pub database_backend: &'static str,
    pub dev_mode: bool,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Stops accepting, finishes in-flight requests, and returns.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await??;
        Ok(())
    }

    /// Serves until ctrl-c (then stops gracefully) or a fatal error.
    pub async fn run_until_ctrl_c(mut self) -> anyhow::Result<()> {
        tokio::select! {
            r = &mut self.task => {
                r??;
                anyhow::bail!("the server stopped unexpectedly")
            }
            _ = tokio::signal::ctrl_c() => {
                eprintln!("shutting down");
                self.stop().await
            }
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Checks what production mode forbids; returns a list of every problem at once.
pub fn check_settings(s: &Settings) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    if s.mode == Mode::Production {
        if s.idv_provider == "simulator" {
            problems.push("PASSBIND_IDV_PROVIDER=simulator is for development only".to_owned());
        }
        match &s.public_url {
            None => problems.push("PASSBIND_PUBLIC_URL is required (https://...)".to_owned()),
            Some(u) if u.scheme() != "https" => problems.push(format!(
                "PASSBIND_PUBLIC_URL must be https, not {}",
                u.scheme()
            )),
            _ => {}
        }
        if s.rp_mode == RpModeSetting::Builtin {
            if s.rp_origins.is_empty() {
                problems.push("PASSBIND_RP_ORIGINS is required".to_owned());
            }
            for o in &s.rp_origins {
                if !(o.starts_with("https://") || o.starts_with("android:apk-key-hash:")) {
                    problems.push(format!(
                        "origin {o} is not https (or android:apk-key-hash:)"
                    ));
                }
            }
            if s.rp_id == "localhost" {
                problems.push("PASSBIND_RP_ID=localhost is for development only".to_owned());
            }
        }
        if s.database_url.is_none() {
            problems.push(
                "PASSBIND_DATABASE_URL is required (postgres://... or sqlite://...)".to_owned(),
            );
        }
    }
    if s.session_ttl_min_seconds == 0
        || s.session_ttl_seconds < s.session_ttl_min_seconds
        || s.session_ttl_seconds > s.session_ttl_max_seconds
    {
        problems.push(
            "PASSBIND_SESSION_TTL_SECONDS must lie between PASSBIND_SESSION_TTL_MIN_SECONDS (>= 1) \
             and PASSBIND_SESSION_TTL_MAX_SECONDS"
                .to_owned(),
        );
    }
    if !s.handoff_link.contains("{token}") {
        problems.push("PASSBIND_HANDOFF_LINK must contain {token}".to_owned());
    }
    if s.step_up_max_captures == 0 {
        problems.push("PASSBIND_STEP_UP_MAX_CAPTURES must be at least 1".to_owned());
    }
    if s.max_body_bytes < 1024 {
        problems.push("PASSBIND_MAX_BODY_BYTES must be at least 1024".to_owned());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("invalid settings:\n  - {}", problems.join("\n  - "))
    }
}

/// The database URL in effect (SQLite in the data directory by default).
pub fn database_url(s: &Settings) -> String {
    match &s.database_url {
        Some(u) if !u.0.is_empty() => u.0.clone(),
        _ => format!("sqlite://{}", s.data_dir.join("passbind.db").display()),
    }
}

/// Opens the database named by the settings.
pub async fn open_store(s: &Settings) -> anyhow::Result<SqlStore> {
    if s.database_url.is_none() {
        std::fs::create_dir_all(&s.data_dir)
            .with_context(|| format!("creating the data directory {}", s.data_dir.display()))?;
    }
    let url = database_url(s);
    passbind_store::connect(
        &url,
        ConnectOptions {
            max_connections: Some(s.database_max_connections),
            ..ConnectOptions::default()
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("opening the database: {e}"))
}

/// Starts the server. `store` replaces the database named by the settings (tests use it to
/// hand in an isolated PostgreSQL schema).
pub async fn start(settings: Settings, store: Option<SqlStore>) -> anyhow::Result<RunningServer> {
    check_settings(&settings)?;
    if settings.mode == Mode::Dev || settings.database_url.is_none() {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("creating {}", settings.data_dir.display()))?;
    }
    let keys = keys::load(&settings)?;
    let store = match store {
        Some(s) => s,
        None => open_store(&settings).await?,
    };
    if settings.mode == Mode::Dev {
        store
            .migrate()
            .await
            .map_err(|e| anyhow::anyhow!("migrating the database: {e}"))?;
    }
    let backend = store.backend();
    let store = Arc::new(store);

    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("listening on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let public_url = match &settings.public_url {
        Some(u) => u.clone(),
        None => Url::parse(&format!("http://{addr}"))?,
    };
    let origins = if settings.rp_origins.is_empty() {
        vec![format!("http://localhost:{}", addr.port())]
    } else {
        settings.rp_origins.clone()
    };

    let mut extra_routes = axum::Router::new();
    let provider: Arc<dyn IdvProvider> = match settings.idv_provider.as_str() {
        "simulator" => {
            let (router, client) = simulator_provider(&settings, &keys, addr, &public_url)?;
            extra_routes = extra_routes.nest(SIMULATOR_PATH, router);
            client
        }
        other => bail!("PASSBIND_IDV_PROVIDER={other} is not available (use `simulator`)"),
    };

    let rp = match settings.rp_mode {
        RpModeSetting::Builtin => RpMode::BuiltIn(Arc::new(
            WebauthnRp::new(
                &settings.rp_id,
                &settings.rp_name,
                &origins,
                settings.require_user_verification,
            )
            .context("relying-party settings")?,
        )),
        RpModeSetting::External => RpMode::External,
    };

    let engine = Arc::new(
        Engine::new(
            store.clone(),
            Arc::new(SystemClock),
            Arc::new(SystemRng::new()),
            vec![provider],
            rp,
            Keys {
                ebt: keys.keyring.clone(),
                user_ref_key: keys.user_ref_key.clone(),
            },
            EngineConfig {
                session_ttl_default_secs: settings.session_ttl_seconds,
                session_ttl_min_secs: settings.session_ttl_min_seconds,
                session_ttl_max_secs: settings.session_ttl_max_seconds,
                idv_provider: settings.idv_provider.clone(),
                step_up_max_captures: settings.step_up_max_captures,
                lockout_threshold: settings.lockout_threshold,
                lockout_window_secs: settings.lockout_window_seconds,
                lockout_duration_secs: settings.lockout_duration_seconds,
                handoff_ttl_secs: settings.handoff_ttl_seconds,
                continuation_ttl_secs: settings.continuation_ttl_seconds,
                revoke_on_recovery: settings.recovery_revokes_other_credentials,
                reject_counter_regression: settings.reject_counter_regression,
            },
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?,
    );

    let mut first_api_key = None;
    if settings.mode == Mode::Dev
        && engine
            .store()
            .api_keys()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .is_empty()
    {
        let scopes: Vec<String> = SCOPES.iter().map(|(s, _)| (*s).to_owned()).collect();
        let key = engine
            .create_api_key("dev", &scopes)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        first_api_key = Some(key.token);
    }

    let (router, _metrics) = crate::app::build(
        engine.clone(),
        crate::app::HttpOptions {
            max_body_bytes: settings.max_body_bytes,
            handoff_link: settings.handoff_link.clone(),
        },
    );
    let router = router.merge(extra_routes);
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
    });
    Ok(RunningServer {
        addr,
        public_url,
        engine,
        first_api_key,
        database_backend: backend,
        dev_mode: settings.mode == Mode::Dev,
        shutdown: Some(tx),
        task,
    })
}

/// The development simulator (mounted on this server) and the Studio client pointed at it.
fn simulator_provider(
    settings: &Settings,
    keys: &KeyMaterial,
    addr: SocketAddr,
    public_url: &Url,
) -> anyhow::Result<(axum::Router, Arc<dyn IdvProvider>)> {
    let internal = format!("http://{addr}");
    let workflows = WorkflowIds {
        registration: settings
            .registration_workflow_id
            .clone()
            .unwrap_or_else(|| SIM_WORKFLOW_REGISTRATION.to_owned()),
        step_up: settings
            .step_up_workflow_id
            .clone()
            .unwrap_or_else(|| SIM_WORKFLOW_VERIFY.to_owned()),
        recovery: settings
            .recovery_workflow_id
            .clone()
            .unwrap_or_else(|| SIM_WORKFLOW_VERIFY.to_owned()),
    };
    let sim = SimulatorConfig {
        api_token: keys.simulator.api_token.clone(),
        webhook_url: Url::parse(&format!("{internal}/v1/webhooks/idv/simulator"))?,
        webhook_token: keys.simulator.webhook_token.clone(),
        ebt_key: keys::simulator_ebt_key(&keys.simulator)?,
        workflow_ids: workflows.clone(),
        decision_delay: Duration::from_millis(settings.simulator_decision_delay_ms),
        ..SimulatorConfig::default()
    };
    let router = simulator::router(sim).map_err(|e| anyhow::anyhow!("simulator: {e}"))?;
    let capture_url = format!(
        "{}{SIMULATOR_PATH}/sdk/captures",
        public_url.as_str().trim_end_matches('/')
    );
    let client = StudioClient::new(StudioConfig {
        name: "simulator".to_owned(),
        base_url: Url::parse(&format!("{internal}{SIMULATOR_PATH}"))?,
        api_token: keys.simulator.api_token.clone(),
        webhook_token: keys.simulator.webhook_token.clone(),
        workflow_ids: workflows,
        capture_url: Some(capture_url),
        ..StudioConfig::default()
    })
    .map_err(|e| anyhow::anyhow!("simulator client: {e}"))?;
    Ok((router, Arc::new(client)))
}
