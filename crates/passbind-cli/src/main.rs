//! `passbind`: the one binary of Passbind.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use passbind_core::auth::SCOPES;
use passbind_server::config::{LogFormat, Mode, Settings};
use passbind_server::serve;
use std::process::ExitCode;

mod audit;
mod bench;
mod demo;

#[derive(Parser)]
#[command(
    name = "passbind",
    version,
    about = "Identity-bound passkeys: a self-hosted server for device-bound FIDO2 passkeys whose \
             owner was identity-verified, with live biometric step-up, cross-device step-up, \
             recovery by face match, and an audit trail that keeps no personal data.",
    long_about = None,
    after_help = "Start with `passbind serve`: with no settings it runs in dev mode (SQLite in \
                  ./passbind-data, generated keys, the IDV simulator, 127.0.0.1:8080) and prints \
                  an API key. Every flag of `serve` can also be set by the environment variable \
                  shown in `passbind serve --help`."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (Core API, IDV webhooks, health, metrics, OpenAPI).
    Serve(Box<Settings>),
    /// Apply the database migrations and exit.
    Migrate(DbArgs),
    /// Create, list or revoke the integrator backend's API keys.
    #[command(subcommand)]
    ApiKey(ApiKeyCommand),
    /// Run all five flows end to end against an in-process server (temporary database), with
    /// their failure paths; exits non-zero if anything misbehaves.
    Demo,
    /// Measure routine sign-ins and full step-ups per second (p50/p99) over HTTP against an
    /// in-process server, on SQLite and/or PostgreSQL. Build with --release.
    Bench(bench::BenchArgs),
    /// Export the tamper-evident audit log, verify an export offline, print the public key.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
}

#[derive(Args)]
struct DbArgs {
    /// `sqlite://PATH` or `postgres://...`. Default: SQLite in the data directory.
    #[arg(long, env = "PASSBIND_DATABASE_URL")]
    database_url: Option<String>,
    /// The data directory of the default SQLite database.
    #[arg(long, env = "PASSBIND_DATA_DIR", default_value = "./passbind-data")]
    data_dir: std::path::PathBuf,
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Create a key; its secret is printed once and stored only as a hash.
    Create {
        /// A name that says who uses the key.
        #[arg(long)]
        name: String,
        /// Scopes: `flows`, `users`, `audit` (repeat the flag). Default: `flows`.
        #[arg(long = "scope", default_values_t = vec!["flows".to_owned()])]
        scopes: Vec<String>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List keys (never their secrets).
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke a key by id (the part after `pbk_` and before the next `_`).
    Revoke {
        id: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logs(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(settings) => serve_cmd(*settings).await,
        Command::Migrate(db) => {
            let store = open(&db).await?;
            store
                .migrate()
                .await
                .map_err(|e| anyhow::anyhow!("migrating: {e}"))?;
            println!("migrations applied ({})", store.backend());
            Ok(())
        }
        Command::ApiKey(cmd) => api_key_cmd(cmd).await,
        Command::Demo => demo::run().await,
        Command::Bench(args) => bench::run(args).await,
        Command::Audit(cmd) => audit::run(cmd).await,
    }
}

async fn open(db: &DbArgs) -> anyhow::Result<passbind_store::SqlStore> {
    let mut s = Settings::for_tests(db.data_dir.clone(), db.database_url.clone());
    s.database_max_connections = 2;
    serve::open_store(&s).await
}

async fn api_key_cmd(cmd: ApiKeyCommand) -> anyhow::Result<()> {
    use passbind_core::model::Write;
    use passbind_core::ports::store::*;
    match cmd {
        ApiKeyCommand::Create { name, scopes, db } => {
            let store = open(&db).await?;
            store.migrate().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            let rng = passbind_server::adapters::SystemRng::new();
            let now = passbind_core::ports::Clock::now(&passbind_server::adapters::SystemClock);
            let key = passbind_core::auth::new_api_key(&rng, &name, &scopes, now)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            store
                .commit(vec![
                    Write::InsertApiKey(key.record.clone()),
                    cli_audit(now, "api_key.created", &key.record.id),
                ])
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", key.token);
            eprintln!(
                "API key {} ({}) created with scopes {}; the secret above is shown only now.",
                key.record.id,
                key.record.name,
                key.record.scopes.join(",")
            );
            Ok(())
        }
        ApiKeyCommand::List { db } => {
            let store = open(&db).await?;
            let keys = store.api_keys().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{:<18} {:<24} {:<20} STATUS", "ID", "NAME", "SCOPES");
            for k in keys {
                println!(
                    "{:<18} {:<24} {:<20} {}",
                    k.id,
                    k.name,
                    k.scopes.join(","),
                    if k.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    }
                );
            }
            Ok(())
        }
        ApiKeyCommand::Revoke { id, db } => {
            let store = open(&db).await?;
            let now = passbind_core::ports::Clock::now(&passbind_server::adapters::SystemClock);
            store
                .commit(vec![Write::RevokeApiKey {
                    id: id.clone(),
                    at: now,
                }])
                .await
                .map_err(|_| anyhow::anyhow!("no active API key with id {id}"))?;
            println!("revoked {id}");
            Ok(())
        }
    }
}

/// The audit event of an API-key change made from the command line (operator `cli`).
fn cli_audit(now: i64, event_type: &str, key_id: &str) -> passbind_core::model::Write {
    let mut details = serde_json::Map::new();
    details.insert("api_key".into(), serde_json::json!(key_id));
    passbind_core::model::Write::AppendAudit(passbind_core::model::AuditDraft {
        time_ms: now,
        event_type: event_type.to_owned(),
        outcome: "success".to_owned(),
        actor_kind: "operator".to_owned(),
        actor_id: Some("cli".to_owned()),
        details,
        ..Default::default()
    })
}

async fn serve_cmd(settings: Settings) -> anyhow::Result<()> {
    init_logs(&settings.log, settings.log_format);
    tracing::debug!(?settings, "settings");
    let server = serve::start(settings.clone(), None)
        .await
        .context("starting the server")?;
    print_banner(&settings, &server);
    server.run_until_ctrl_c().await
}

fn print_banner(settings: &Settings, server: &serve::RunningServer) {
    let mut out = String::new();
    if settings.mode == Mode::Dev {
        out.push_str(
            "\n  ************************************************************************\n  \
             *  DEVELOPMENT MODE: generated keys, the IDV SIMULATOR (no real identity *\n  \
             *  checks), no TLS. Never use it for real users. Set PASSBIND_MODE=     *\n  \
             *  production and see README \"Configuration\" for a real deployment.    *\n  \
             ************************************************************************\n\n",
        );
    }
    out.push_str(&format!(
        "  Passbind listening on   {}\n",
        server.base_url()
    ));
    out.push_str(&format!(
        "  database                {} ({})\n",
        server.database_backend,
        match &settings.database_url {
            Some(_) => "PASSBIND_DATABASE_URL".to_owned(),
            None => settings.data_dir.join("passbind.db").display().to_string(),
        }
    ));
    out.push_str(&format!(
        "  IDV provider            {}\n",
        settings.idv_provider
    ));
    out.push_str(&format!(
        "  dashboard               {}/dashboard/\n",
        passbind_server::dashboard::dashboard_origin(&server.public_url)
    ));
    out.push_str(&format!(
        "  OpenAPI                 {}/openapi.json\n",
        server.base_url()
    ));
    out.push_str(&format!(
        "  health / metrics        {0}/healthz  {0}/metrics\n",
        server.base_url()
    ));
    if settings.mode == Mode::Dev {
        out.push_str(&format!(
            "  dev keys                {}\n",
            settings.data_dir.join("dev-keys.json").display()
        ));
    }
    if let Some(key) = &server.first_api_key {
        out.push_str(&format!(
            "\n  API key (scopes {}; shown once, stored hashed):\n    {key}\n",
            SCOPES.iter().map(|(s, _)| *s).collect::<Vec<_>>().join(",")
        ));
    }
    if let Some(link) = &server.operator_setup_link {
        out.push_str(&format!(
            "\n  No dashboard operator yet. Open this one-time link in a browser on this machine\n  \
             to enrol the first operator's passkey (single use, expires in {} h):\n    {link}\n",
            settings.operator_setup_ttl_seconds / 3600
        ));
    }
    eprintln!("{out}");
}
