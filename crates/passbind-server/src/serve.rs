//! Start-up: settings are checked, keys loaded, the database opened (and migrated in dev), the
//! IDV provider and relying party wired, and the server bound.

use crate::adapters::{SystemClock, SystemRng};
use crate::config::{Mode, RpModeSetting, Secret, Settings};
use crate::keys::{self, KeyMaterial};
use crate::rp::WebauthnRp;
use anyhow::{bail, Context};
use passbind_core::auth::SCOPES;
use passbind_core::ports::{IdvProvider, SessionCursor};
use passbind_core::{Engine, EngineConfig, Keys, RpMode};
use passbind_idv::simulator::{self, SimulatorConfig};
use passbind_idv::studio::{OAuthClient, StudioClient, StudioConfig, WorkflowIds};
use passbind_store::{ConnectOptions, SqlStore};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
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
    /// Stops the reconciler when set (or when dropped: the task also ends then).
    stop_reconciler: watch::Sender<bool>,
    reconciler: Option<JoinHandle<()>>,
    /// Signs audit checkpoints when due; stopped with the reconciler.
    checkpointer: Option<JoinHandle<()>>,
    /// The one-time link that enrols the first dashboard operator (while none exists).
    pub operator_setup_link: Option<String>,
}

impl RunningServer {
    /// Stops the reconciler, stops accepting, finishes in-flight requests, and returns.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.stop_reconciler.send(true);
        if let Some(reconciler) = self.reconciler.take() {
            let _ = reconciler.await;
        }
        if let Some(checkpointer) = self.checkpointer.take() {
            let _ = checkpointer.await;
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await??;
        // Anchor what was written before the stop, so the log's tail is covered by a
        // signed checkpoint.
        if let Err(e) = self.engine.checkpoint(true).await {
            tracing::warn!(error = %e, "final audit checkpoint failed");
        }
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
    match s.idv_provider.as_str() {
        "simulator" => {}
        "onfido" => onfido_problems(s, &mut problems),
        "witness" => {
            match &s.witness_url {
                None => problems.push("PASSBIND_WITNESS_URL is required in witness mode".into()),
                Some(u) if s.mode == Mode::Production && u.scheme() != "https" => {
                    problems.push("PASSBIND_WITNESS_URL must be https in production".into())
                }
                _ => {}
            }
            if s.witness_secret.as_ref().is_none_or(|x| x.0.len() < 16) {
                problems.push(
                    "PASSBIND_WITNESS_SECRET (at least 16 characters) is required in witness mode"
                        .into(),
                );
            }
        }
        other => problems.push(format!(
            "PASSBIND_IDV_PROVIDER must be `simulator`, `onfido` or `witness`, not `{other}`"
        )),
    }
    idv_call_problems(s, &mut problems);
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("invalid settings:\n  - {}", problems.join("\n  - "))
    }
}

/// A secret setting's value, if set and not empty.
fn secret_value(s: &Option<Secret>) -> Option<&str> {
    s.as_ref().map(|v| v.0.as_str()).filter(|v| !v.is_empty())
}

/// Whether `v` can be sent in an HTTP header as a token (visible ASCII, no spaces).
fn header_safe(v: &str) -> bool {
    v.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// Whether `v` has the shape of a UUID (Studio workflow ids are UUIDs).
fn looks_like_uuid(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The three Studio workflow settings, with their variable names.
fn workflow_settings(s: &Settings) -> [(&'static str, Option<&str>); 3] {
    [
        (
            "BIOMETRIC_PASSKEY_IDV_REGISTRATION_WORKFLOW_ID",
            s.registration_workflow_id.as_deref(),
        ),
        (
            "BIOMETRIC_PASSKEY_IDV_STEP_UP_WORKFLOW_ID",
            s.step_up_workflow_id.as_deref(),
        ),
        (
            "BIOMETRIC_PASSKEY_IDV_RECOVERY_VERIFY_WORKFLOW_ID",
            s.recovery_workflow_id.as_deref(),
        ),
    ]
}

/// What `PASSBIND_IDV_PROVIDER=onfido` needs. Messages name settings, never secret values.
fn onfido_problems(s: &Settings, problems: &mut Vec<String>) {
    let token = secret_value(&s.onfido_api_token);
    let client_id = s
        .onfido_client_id
        .as_deref()
        .filter(|v| !v.trim().is_empty());
    let client_secret = secret_value(&s.onfido_client_secret);
    match (token, client_id, client_secret) {
        (Some(_), None, None) | (None, Some(_), Some(_)) => {}
        (Some(_), _, _) => problems.push(
            "set either PASSBIND_ONFIDO_API_TOKEN or PASSBIND_ONFIDO_CLIENT_ID with \
             PASSBIND_ONFIDO_CLIENT_SECRET (OAuth2), not both"
                .to_owned(),
        ),
        (None, None, None) => problems.push(
            "PASSBIND_ONFIDO_API_TOKEN (or PASSBIND_ONFIDO_CLIENT_ID with \
             PASSBIND_ONFIDO_CLIENT_SECRET) is required for PASSBIND_IDV_PROVIDER=onfido"
                .to_owned(),
        ),
        (None, Some(_), None) => problems
            .push("PASSBIND_ONFIDO_CLIENT_ID needs PASSBIND_ONFIDO_CLIENT_SECRET".to_owned()),
        (None, None, Some(_)) => problems
            .push("PASSBIND_ONFIDO_CLIENT_SECRET needs PASSBIND_ONFIDO_CLIENT_ID".to_owned()),
    }
    if token.is_some_and(|t| !header_safe(t)) {
        problems.push(
            "PASSBIND_ONFIDO_API_TOKEN has characters an HTTP header cannot carry \
             (spaces, control or non-ASCII characters)"
                .to_owned(),
        );
    }
    if secret_value(&s.onfido_webhook_token).is_none() {
        problems.push(
            "PASSBIND_ONFIDO_WEBHOOK_TOKEN (the webhook's token from the Onfido dashboard) is \
             required for PASSBIND_IDV_PROVIDER=onfido"
                .to_owned(),
        );
    }
    for (name, value) in workflow_settings(s) {
        match value.map(str::trim).filter(|v| !v.is_empty()) {
            None => problems.push(format!(
                "{name} is required for PASSBIND_IDV_PROVIDER=onfido"
            )),
            Some(v) if !looks_like_uuid(v) => problems.push(format!(
                "{name} must be a Studio workflow id (a UUID such as \
                 3f0c5a6e-8d4b-4c3a-9a57-1e2d3c4b5a69), not `{v}`"
            )),
            Some(_) => {}
        }
    }
    if let Some(u) = &s.onfido_base_url {
        if !matches!(u.scheme(), "http" | "https") || u.cannot_be_a_base() || u.host().is_none() {
            problems.push("PASSBIND_ONFIDO_BASE_URL must be an http(s) URL".to_owned());
        } else if s.mode == Mode::Production && u.scheme() != "https" {
            problems.push("PASSBIND_ONFIDO_BASE_URL must be https in production".to_owned());
        }
        if u.query().is_some() || u.fragment().is_some() {
            problems.push("PASSBIND_ONFIDO_BASE_URL must not have a query or fragment".to_owned());
        }
    }
}

/// The outbound call policy and the reconciler's settings.
fn idv_call_problems(s: &Settings, problems: &mut Vec<String>) {
    if !(1..=300).contains(&s.idv_timeout_seconds) {
        problems.push("PASSBIND_IDV_TIMEOUT_SECONDS must be between 1 and 300".to_owned());
    }
    if s.idv_max_retries > 10 {
        problems.push("PASSBIND_IDV_MAX_RETRIES must be at most 10".to_owned());
    }
    if !(1..=60_000).contains(&s.idv_retry_backoff_ms) {
        problems.push("PASSBIND_IDV_RETRY_BACKOFF_MS must be between 1 and 60000".to_owned());
    }
    if !(1..=300_000).contains(&s.idv_max_retry_delay_ms) {
        problems.push("PASSBIND_IDV_MAX_RETRY_DELAY_MS must be between 1 and 300000".to_owned());
    }
    let interval = s.idv_reconcile_interval_seconds;
    if !(interval == 0.0 || (0.05..=86_400.0).contains(&interval)) {
        problems.push(
            "PASSBIND_IDV_RECONCILE_INTERVAL_SECONDS must be 0 (off) or between 0.05 and 86400"
                .to_owned(),
        );
    }
    if !(0.0..=86_400.0).contains(&s.idv_reconcile_min_age_seconds) {
        problems
            .push("PASSBIND_IDV_RECONCILE_MIN_AGE_SECONDS must be between 0 and 86400".to_owned());
    }
    if !(1..=10_000).contains(&s.idv_reconcile_batch_size) {
        problems.push("PASSBIND_IDV_RECONCILE_BATCH_SIZE must be between 1 and 10000".to_owned());
    }
}

/// The timeout and retry policy of outbound IDV calls, onto a client configuration.
fn with_call_policy(s: &Settings, config: StudioConfig) -> StudioConfig {
    StudioConfig {
        timeout: Duration::from_secs(s.idv_timeout_seconds),
        max_retries: s.idv_max_retries,
        retry_backoff: Duration::from_millis(s.idv_retry_backoff_ms),
        max_retry_delay: Duration::from_millis(s.idv_max_retry_delay_ms),
        ..config
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
    start_with_clock(settings, store, Arc::new(SystemClock)).await
}

/// [`start`] with the clock the engine (and witness mode) read: session expiry, secrets'
/// lifetimes, audit times. Tests pass one they can move forward instead of sleeping.
pub async fn start_with_clock(
    settings: Settings,
    store: Option<SqlStore>,
    clock: Arc<dyn passbind_core::ports::Clock>,
) -> anyhow::Result<RunningServer> {
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
    } else {
        // Production never changes the schema itself (that is a step of its own, run once per
        // release: `passbind migrate`, or the chart's migration job), and does not start on one
        // older than it needs.
        let pending = store
            .pending_migrations()
            .await
            .map_err(|e| anyhow::anyhow!("reading the database schema version: {e}"))?;
        if !pending.is_empty() {
            anyhow::bail!(
                "the database lacks the migrations {pending:?} that this version needs: run \
                 `passbind migrate` with the same PASSBIND_DATABASE_URL, then start again"
            );
        }
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
        "onfido" => onfido_provider(&settings)?,
        "witness" => Arc::new(
            passbind_idv::witness::WitnessProvider::new(passbind_idv::witness::WitnessConfig {
                url: settings
                    .witness_url
                    .clone()
                    .context("PASSBIND_WITNESS_URL")?,
                secret: settings
                    .witness_secret
                    .as_ref()
                    .map(|x| x.0.clone())
                    .unwrap_or_default(),
                timeout: Duration::from_millis(settings.witness_timeout_ms),
                signing_seed: *keys.audit_seed,
                clock: Arc::clone(&clock),
            })
            .map_err(|e| anyhow::anyhow!("witness mode: {e}"))?,
        ),
        other => {
            bail!("PASSBIND_IDV_PROVIDER={other} is not available (use `simulator` or `onfido`)")
        }
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
            clock,
            Arc::new(SystemRng::new()),
            vec![provider],
            rp,
            Keys {
                ebt: keys.keyring.clone(),
                user_ref_key: keys.user_ref_key.clone(),
                signer: Arc::new(
                    passbind_audit::CheckpointSigner::from_seed(*keys.audit_seed)
                        .map_err(|e| anyhow::anyhow!("audit signing key: {e}"))?,
                ),
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
                audit: passbind_core::audit::AuditConfig {
                    checkpoint_every_events: settings.audit_checkpoint_events.max(1),
                    checkpoint_every_ms: i64::try_from(
                        settings.audit_checkpoint_seconds.saturating_mul(1000),
                    )
                    .unwrap_or(i64::MAX),
                },
                api_key_cache_ms: i64::try_from(settings.api_key_cache_ms).unwrap_or(i64::MAX),
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
            .create_api_key(&passbind_core::Actor::system(), "dev", &scopes)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        first_api_key = Some(key.token);
    }

    let (management, operator_setup_link) = crate::dashboard::start::management(
        &settings,
        &public_url,
        &origins,
        store.clone(),
        backend,
    )
    .await?;
    let (router, _metrics) = crate::app::build(
        engine.clone(),
        crate::app::HttpOptions {
            max_body_bytes: settings.max_body_bytes,
            handoff_link: settings.handoff_link.clone(),
            management,
            webhook_ack_deadline: Duration::from_millis(settings.idv_webhook_ack_ms.max(1)),
        },
    );
    let router = router.merge(extra_routes);

    let (stop_reconciler, stop_rx) = watch::channel(false);
    let reconciler = if settings.idv_reconcile_interval_seconds > 0.0 {
        Some(tokio::spawn(reconcile_loop(
            engine.clone(),
            ReconcileOptions {
                // Both checked by `check_settings`; the fallbacks are the defaults.
                interval: Duration::try_from_secs_f64(settings.idv_reconcile_interval_seconds)
                    .unwrap_or(Duration::from_secs(30)),
                min_age: Duration::try_from_secs_f64(settings.idv_reconcile_min_age_seconds)
                    .unwrap_or(Duration::from_secs(60)),
                batch_size: settings.idv_reconcile_batch_size,
            },
            stop_rx,
        )))
    } else {
        tracing::warn!(
            "the IDV reconciler is off on this replica (PASSBIND_IDV_RECONCILE_INTERVAL_SECONDS=0): \
             a lost webhook leaves its session pending unless another replica reconciles"
        );
        None
    };

    let checkpointer = Some(tokio::spawn(checkpoint_loop(
        engine.clone(),
        Duration::from_secs(settings.audit_checkpoint_seconds.clamp(1, 5)),
        Duration::from_millis(settings.audit_integrate_ms.clamp(10, 10_000)),
        stop_reconciler.subscribe(),
    )));

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
        stop_reconciler,
        reconciler,
        checkpointer,
        operator_setup_link,
    })
}

/// The audit sequencer and signer of this replica: every `integrate` it integrates the pending
/// audit events (unless another replica is at it), and every `tick` it signs a checkpoint when
/// the policy says one is due. Replicas may race: one sequencer at a time, and a checkpoint
/// signed from a stale read is refused by the store.
async fn checkpoint_loop(
    engine: Arc<Engine>,
    tick: Duration,
    integrate: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut last_checkpoint = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(integrate) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        if let Err(e) = engine.integrate_audit(false).await {
            tracing::warn!(error = %e, "audit sequencer failed");
        }
        if last_checkpoint.elapsed() < tick {
            continue;
        }
        last_checkpoint = tokio::time::Instant::now();
        match engine.checkpoint(false).await {
            Ok(Some(c)) => tracing::debug!(tree_size = c.tree_size, "audit checkpoint signed"),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "audit checkpoint failed"),
        }
    }
}

/// How the reconciler runs.
#[derive(Debug, Clone, Copy)]
struct ReconcileOptions {
    interval: Duration,
    min_age: Duration,
    batch_size: u32,
}

/// The reconciler: every interval (with a little jitter, so that replicas started together
/// do not poll in lockstep), one pass over the sessions whose run is at least `min_age` old and
/// still has no verdict. Ends when told to stop or when the server is dropped; a pass in
/// flight is abandoned (every write is one atomic commit, so nothing is left half done).
async fn reconcile_loop(
    engine: Arc<Engine>,
    options: ReconcileOptions,
    mut stop: watch::Receiver<bool>,
) {
    use ring::rand::SecureRandom;
    let rng = ring::rand::SystemRandom::new();
    let min_age_ms = i64::try_from(options.min_age.as_millis()).unwrap_or(i64::MAX);
    let mut cursor: Option<SessionCursor> = None;
    loop {
        let mut r = [0u8; 1];
        let jitter = match rng.fill(&mut r) {
            Ok(()) => 0.8 + 0.4 * f64::from(r[0]) / 255.0,
            Err(_) => 1.0,
        };
        tokio::select! {
            _ = tokio::time::sleep(options.interval.mul_f64(jitter)) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        let updated_before = engine.now().saturating_sub(min_age_ms);
        let pass = engine.reconcile_pending(updated_before, cursor.take(), options.batch_size);
        let result = tokio::select! {
            r = pass => r,
            _ = stop.changed() => return,
        };
        match result {
            Ok(report) => {
                if report.applied > 0 || report.failed > 0 {
                    tracing::info!(
                        examined = report.examined,
                        applied = report.applied,
                        still_running = report.still_running,
                        already_settled = report.already_settled,
                        failed = report.failed,
                        skipped = report.skipped,
                        provider_unavailable = report.provider_unavailable,
                        "IDV reconciliation pass"
                    );
                } else {
                    tracing::debug!(examined = report.examined, "IDV reconciliation pass");
                }
                cursor = report.next;
            }
            Err(e) => tracing::warn!(error = %e, "IDV reconciliation pass failed"),
        }
    }
}

/// The Entrust/Onfido Studio provider, from the `PASSBIND_ONFIDO_*` and workflow settings
/// (already checked by [`check_settings`]).
fn onfido_provider(settings: &Settings) -> anyhow::Result<Arc<dyn IdvProvider>> {
    let base_url = match &settings.onfido_base_url {
        Some(u) => u.clone(),
        None => Url::parse(settings.onfido_region.base_url())?,
    };
    let workflow = |v: &Option<String>| v.as_deref().map(str::trim).unwrap_or_default().to_owned();
    let workflow_ids = WorkflowIds {
        registration: workflow(&settings.registration_workflow_id),
        step_up: workflow(&settings.step_up_workflow_id),
        recovery: workflow(&settings.recovery_workflow_id),
    };
    let (api_token, oauth) = match secret_value(&settings.onfido_api_token) {
        Some(token) => (token.to_owned(), None),
        None => (
            String::new(),
            Some(OAuthClient {
                client_id: settings
                    .onfido_client_id
                    .as_deref()
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
                client_secret: secret_value(&settings.onfido_client_secret)
                    .unwrap_or_default()
                    .to_owned(),
            }),
        ),
    };
    let auth = if oauth.is_some() {
        "oauth2 client credentials"
    } else {
        "api token"
    };
    let config = with_call_policy(
        settings,
        StudioConfig {
            name: "onfido".to_owned(),
            base_url: base_url.clone(),
            api_token,
            oauth,
            webhook_token: secret_value(&settings.onfido_webhook_token)
                .unwrap_or_default()
                .to_owned(),
            workflow_ids,
            capture_url: None,
            ..StudioConfig::default()
        },
    );
    let client =
        StudioClient::new(config).map_err(|e| anyhow::anyhow!("Entrust/Onfido provider: {e}"))?;
    tracing::info!(base_url = %base_url, auth, "IDV provider: Entrust/Onfido Studio");
    Ok(Arc::new(client))
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
    let client = StudioClient::new(with_call_policy(
        settings,
        StudioConfig {
            name: "simulator".to_owned(),
            base_url: Url::parse(&format!("{internal}{SIMULATOR_PATH}"))?,
            api_token: keys.simulator.api_token.clone(),
            webhook_token: keys.simulator.webhook_token.clone(),
            workflow_ids: workflows,
            capture_url: Some(capture_url),
            ..StudioConfig::default()
        },
    ))
    .map_err(|e| anyhow::anyhow!("simulator client: {e}"))?;
    Ok((router, Arc::new(client)))
}
