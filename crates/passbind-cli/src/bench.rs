//! `passbind bench`: a rerunnable load test of whole flows over HTTP against an in-process
//! server, on SQLite or PostgreSQL, with the load generator (HTTP clients and software
//! authenticators) sharing the machine, as in the peer measurements of docs/performance.md.

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use passbind_proto::session::{SessionState, SessionView};
use passbind_sdk::client::CoreClient;
use passbind_sdk::device::{Device, Person};
use passbind_sdk::load_device::LoadDevice;
use passbind_server::Settings;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Routine sign-in: begin, the device signs, complete.
    Routine,
    /// Full in-app step-up: open, live capture, the simulator's signed webhook, complete.
    StepUp,
    /// Assertion verification alone (parse + verify), one thread, no HTTP.
    Webauthn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Database {
    Sqlite,
    Postgres,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure (repeat the flag for several).
    #[arg(long = "scenario", value_enum, default_values_t = vec![Scenario::Routine, Scenario::StepUp])]
    scenarios: Vec<Scenario>,
    /// The database behind the server (repeat the flag for both).
    #[arg(long = "database", value_enum, default_values_t = vec![Database::Sqlite])]
    databases: Vec<Database>,
    /// PostgreSQL server for `--database postgres` (a fresh schema is created in it).
    #[arg(
        long,
        env = "PASSBIND_TEST_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres_url: String,
    /// Concurrent clients (each with its own user and device).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Measured seconds per scenario (after a one-second warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

/// An enrolled user: their face (for captures), their phone's capture client, and a lean
/// ring-based authenticator so that the load generator's signing stays cheap.
struct User {
    id: String,
    person: Person,
    phone: Device,
    keys: LoadDevice,
}

struct Outcome {
    latencies: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: a debug build; measure with `cargo run --release --bin passbind -- bench`"
        );
    }
    println!(
        "passbind bench: {} cores, concurrency {}, {} s per scenario",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        args.concurrency,
        args.seconds
    );
    if args.scenarios.contains(&Scenario::Webauthn) {
        let r = passbind_webauthn::bench::bench_assertions(50_000)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        println!(
            "webauthn   {:>8.0} assertions/s on one thread ({:.1} us each, {}, parse + verify)",
            r.per_second, r.micros_per_assertion, r.algorithm
        );
    }
    for db in &args.databases {
        let flows: Vec<Scenario> = args
            .scenarios
            .iter()
            .copied()
            .filter(|s| *s != Scenario::Webauthn)
            .collect();
        if flows.is_empty() {
            continue;
        }
        let dir = tempfile::tempdir()?;
        let mut settings = Settings::for_tests(dir.path().to_path_buf(), None);
        settings.simulator_decision_delay_ms = 0;
        settings.lockout_threshold = 0;
        settings.database_max_connections = 16;
        let store = match db {
            Database::Sqlite => None,
            Database::Postgres => {
                Some(passbind_store::testing::fresh_postgres_at(&args.postgres_url).await)
            }
        };
        let server = passbind_server::start(settings, store)
            .await
            .context("starting the server")?;
        let key = server
            .engine
            .create_api_key(&passbind_core::Actor::system(), "bench", &["flows".into()])
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let client = CoreClient::new(&server.base_url(), &key.token);
        let origin = format!("http://localhost:{}", server.addr.port());
        let users = enrol(&client, &origin, args.concurrency).await?;
        for scenario in flows {
            let out = load(&client, &origin, &users, scenario, args.seconds).await?;
            report(*db, scenario, &out);
        }
        server.stop().await?;
    }
    Ok(())
}

/// One enrolled user per client.
async fn enrol(client: &CoreClient, origin: &str, n: usize) -> anyhow::Result<Arc<Vec<User>>> {
    let mut users = Vec::with_capacity(n);
    for i in 0..n {
        let user = format!("bench-{i}");
        let person = Person::new(10_000 + i as u64);
        let phone = Device::new();
        let keys = LoadDevice::new();
        passbind_sdk::load_device::enrol(client, origin, &user, &person, i as u64, &phone, &keys)
            .await
            .with_context(|| format!("enrolment of {user}"))?;
        users.push(User {
            id: user,
            person,
            phone,
            keys,
        });
    }
    Ok(Arc::new(users))
}

async fn one(
    client: &CoreClient,
    origin: &str,
    u: &User,
    scenario: Scenario,
    n: u64,
) -> anyhow::Result<()> {
    let user = u.id.as_str();
    match scenario {
        Scenario::Routine => {
            let s = client
                .open("authentications", &json!({ "external_user_id": user }))
                .await?;
            let a = u
                .keys
                .get(origin, s.webauthn.as_ref().context("no options")?)?;
            let done = client
                .act(
                    "authentications",
                    &s.id,
                    "complete",
                    &json!({ "credential": a }),
                )
                .await?;
            if done.state != SessionState::Completed {
                bail!("not completed");
            }
        }
        Scenario::StepUp => {
            let s = client
                .open(
                    "step-ups",
                    &json!({ "external_user_id": user, "transaction_context": {"n": n} }),
                )
                .await?;
            u.phone
                .submit_capture(s.idv.as_ref().context("no idv")?, &u.person.face_capture(n))
                .await?;
            let v: SessionView = client
                .wait_for_verdict(&format!("/v1/step-ups/{}", s.id), Duration::from_secs(10))
                .await?;
            if v.state != SessionState::IdvPassed {
                bail!("step-up capture did not pass: {:?}", v.state);
            }
            let a = u
                .keys
                .get(origin, s.webauthn.as_ref().context("no options")?)?;
            client
                .act("step-ups", &s.id, "complete", &json!({ "credential": a }))
                .await?;
        }
        Scenario::Webauthn => {}
    }
    Ok(())
}

async fn load(
    client: &CoreClient,
    origin: &str,
    users: &Arc<Vec<User>>,
    scenario: Scenario,
    seconds: u64,
) -> anyhow::Result<Outcome> {
    let warmup = Instant::now() + Duration::from_secs(1);
    let end = warmup + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for i in 0..users.len() {
        let client = client.clone();
        let origin = origin.to_owned();
        let users = users.clone();
        tasks.push(tokio::spawn(async move {
            let Some(u) = users.get(i) else {
                return (Vec::new(), 0usize);
            };
            let mut lat = Vec::new();
            let mut errors = 0usize;
            let mut n = 0u64;
            loop {
                let t = Instant::now();
                if t >= end {
                    break;
                }
                n += 1;
                let r = one(&client, &origin, u, scenario, n).await;
                if t >= warmup {
                    match r {
                        Ok(()) => lat.push(t.elapsed()),
                        Err(_) => errors += 1,
                    }
                }
            }
            (lat, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        latencies.extend(l);
        errors += e;
    }
    Ok(Outcome {
        latencies,
        errors,
        elapsed: Duration::from_secs(seconds),
    })
}

fn report(db: Database, scenario: Scenario, out: &Outcome) {
    let mut l = out.latencies.clone();
    l.sort();
    let pct = |p: f64| -> f64 {
        if l.is_empty() {
            return 0.0;
        }
        let idx = ((l.len() as f64 - 1.0) * p).round() as usize;
        l.get(idx).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
    };
    println!(
        "{:<8} {:<8} {:>8.0}/s  p50 {:>6.1} ms  p99 {:>6.1} ms  ({} ok, {} errors)",
        format!("{db:?}").to_lowercase(),
        match scenario {
            Scenario::Routine => "routine",
            Scenario::StepUp => "step-up",
            Scenario::Webauthn => "webauthn",
        },
        l.len() as f64 / out.elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        l.len(),
        out.errors
    );
}
