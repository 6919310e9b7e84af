//! The dashboard in real headless Chromium, driven over WebDriver (chromedriver + fantoccini),
//! with Chromium's virtual authenticator standing in for the operator's passkey: first-operator
//! enrolment from the printed setup link, sign-out and passkey sign-in, finding a user created
//! by a registration flow, revoking their credential, and verifying the audit chain. Each step
//! saves a screenshot under `target/test-artifacts/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them); without them the
//! test fails and says so.

use crate::common::{open_req, register, user_credentials, TestApp};
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use passbind_sdk::device::{Device, Person};
use std::path::{Path, PathBuf};
use std::time::Duration;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// WebAuthn §11.3 "Add Virtual Authenticator" (a WebDriver extension command).
#[derive(Debug)]
struct AddVirtualAuthenticator;

impl WebDriverCompatibleCommand for AddVirtualAuthenticator {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/webauthn/authenticator",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        let body = serde_json::json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserConsenting": true,
            "isUserVerified": true,
        });
        (axum::http::Method::POST, Some(body.to_string()))
    }
}

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Browser {
    client: Client,
    _driver: tokio::process::Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Self {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "the browser tests need {path}: install Debian's `{package}` package \
                 (`apt-get install chromium chromium-driver`; .ci/run does it)"
            );
        }
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let driver = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let mut ready = false;
        for _ in 0..100 {
            if let Ok(r) = http.get(format!("{url}/status")).send().await {
                if r.status().is_success() {
                    ready = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "chromedriver did not start on port {port}");
        let profile = tempfile::tempdir().unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .expect("a Chromium session through chromedriver");
        client
            .issue_cmd(AddVirtualAuthenticator)
            .await
            .expect("Chromium's virtual authenticator");
        Self {
            client,
            _driver: driver,
            _profile: profile,
        }
    }

    async fn shot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap();
        let path = artifacts().join(format!("dashboard-{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Waits for an element; on timeout saves a screenshot and fails with the page's text.
    async fn wait(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => e,
            Err(e) => {
                let shot = self.shot("timeout").await;
                let text = match self.client.find(Locator::Css("main")).await {
                    Ok(m) => m.text().await.unwrap_or_default(),
                    Err(_) => String::new(),
                };
                panic!(
                    "waiting for {css}: {e}; page says: {text}; screenshot {}",
                    shot.display()
                );
            }
        }
    }

    async fn click(&self, css: &str) {
        self.wait(css).await.click().await.unwrap();
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.wait(css).await;
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    async fn text(&self, css: &str) -> String {
        self.wait(css).await.text().await.unwrap()
    }
}

/// A week of past sessions with every outcome, written straight to the store, so that the
/// overview's chart (and the README's screenshot of it) has something to show.
async fn history(app: &TestApp) {
    use passbind_core::model::{SessionRecord, UserRecord, Write};
    use passbind_proto::session::{Flow, IdvFailureReason, SessionState};
    let day = 86_400_000i64;
    let now = app.server.engine.now();
    let flows = [
        Flow::Registration,
        Flow::Authentication,
        Flow::StepUp,
        Flow::CrossPlatform,
        Flow::Recovery,
    ];
    let mut writes = Vec::new();
    for d in 1..7i64 {
        for k in 0..(6 + (d * 5) % 7) {
            let n = d * 100 + k;
            let user = UserRecord {
                id: format!("usr_hist{n}"),
                external_user_id: format!("hist-{n}"),
                user_handle: format!("handle-{n:028}").into_bytes(),
                created_at: now - d * day,
                erased_at: None,
            };
            let flow = flows[(k as usize) % flows.len()];
            let (state, failure) = match (k + d) % 9 {
                0 => (SessionState::IdvFailed, Some(IdvFailureReason::Declined)),
                1 => (SessionState::IdvFailed, Some(IdvFailureReason::Abandoned)),
                2 => (SessionState::Cancelled, None),
                3 => (SessionState::IdvPending, None), // expired: never finished
                _ => (SessionState::Completed, None),
            };
            let flow = if failure.is_some() && flow == Flow::Authentication {
                Flow::StepUp
            } else {
                flow
            };
            let created = now - d * day + k * 600_000;
            writes.push(Write::InsertUser(user.clone()));
            writes.push(Write::InsertSession(SessionRecord {
                id: format!("ses_hist{n}"),
                flow,
                state,
                version: 1,
                user_id: user.id.clone(),
                external_user_id: user.external_user_id.clone(),
                created_at: created,
                updated_at: created,
                expires_at: created + 900_000,
                idv_provider: None,
                idv_run_id: None,
                idv_failure: failure,
                credential_id: None,
                data: serde_json::json!({}),
            }));
        }
    }
    app.server.engine.store().commit(writes).await.unwrap();
}

/// Some traffic through the Core API, so that the dashboard has users to find.
async fn traffic(app: &TestApp) {
    for (i, user) in ["cust-browser", "cust-2", "cust-3", "shop-7"]
        .iter()
        .enumerate()
    {
        register(app, user, &Person::new(500 + i as u64), &Device::new()).await;
    }
    // Two sessions left open, one cancelled.
    for user in ["pending-1", "pending-2", "cancelled-1"] {
        let s = app.client.open_registration(&open_req(user)).await.unwrap();
        if user.starts_with("cancelled") {
            let r = app
                .post_json(
                    &format!("/v1/registrations/{}/cancel", s.id),
                    &serde_json::json!({}),
                )
                .await;
            assert_eq!(r.0, 200, "{}", r.1);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_headless_chromium() {
    let app = TestApp::sqlite().await;
    let link = app.server.operator_setup_link.clone().unwrap();
    let b = Browser::start().await;

    // 1. The first operator opens the printed link and enrols a passkey.
    b.client.goto(&link).await.unwrap();
    b.type_into("#operator-name", "alice").await;
    b.shot("01-setup").await;
    b.click("#enrol").await;
    b.wait("#totals").await;
    assert!(b.text("main").await.contains("Welcome, alice"));
    assert!(
        !b.client
            .current_url()
            .await
            .unwrap()
            .as_str()
            .contains("token="),
        "the used link leaves the address bar"
    );
    b.shot("02-enrolled").await;

    // 2. Sign out, then sign in with the passkey.
    b.click("#sign-out").await;
    b.wait("#sign-in-passkey").await;
    b.shot("03-sign-in").await;
    b.click("#sign-in-passkey").await;
    b.wait("#totals").await;
    assert!(b.text("#who-name").await.contains("alice"));

    // 3. A user registered through the Core API shows up; the overview counts them.
    traffic(&app).await;
    b.client
        .goto(&format!("{}/dashboard/", app.origin()))
        .await
        .unwrap();
    b.wait("#chart rect").await;
    assert_eq!(b.text("#total-users .n").await, "7");
    history(&app).await;
    b.client
        .goto(&format!("{}/dashboard/", app.origin()))
        .await
        .unwrap();
    b.wait("#chart rect").await;
    let overview = b.shot("overview").await;
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/dashboard-overview.png");
    if std::env::var_os("PASSBIND_UPDATE_SCREENSHOTS").is_some() {
        std::fs::copy(&overview, docs).unwrap();
    }

    b.click("#nav a[data-page=users]").await;
    b.type_into("#user-search", "cust-b").await;
    b.click("#user-search-go").await;
    b.click("tr[data-user=cust-browser] a").await;
    b.wait("#credentials").await;
    assert_eq!(b.text("#user-id").await, "cust-browser");
    assert!(b.text("#user-ebt").await.starts_with("held"));
    let page = b.text("main").await;
    assert!(page.contains("test phone"), "{page}");
    b.shot("04-user").await;

    // 4. Revoke the credential (with confirmation).
    b.click("button.revoke").await;
    b.click("#confirm-revoke").await;
    b.wait("#user-message .notice.ok").await;
    assert!(b.text("#credentials").await.contains("revoked"));
    b.shot("05-credential-revoked").await;
    let creds = user_credentials(&app, "cust-browser").await;
    assert!(
        creds[0].revoked_at.is_some(),
        "the credential is revoked in the store"
    );

    // 5. The audit page verifies the chain; the revocation is in the log with alice's subject.
    b.click("#nav a[data-page=audit]").await;
    b.wait("#audit-events").await;
    b.click("#verify-audit").await;
    let ok = b.text("#verify-ok").await;
    assert!(ok.starts_with("Intact."), "{ok}");
    let events = b.text("#audit-events").await;
    assert!(
        events.contains("credential.revoked") && events.contains("local:alice"),
        "{events}"
    );
    b.shot("06-audit-verified").await;

    // The other pages render.
    for (page, css) in [
        ("sessions", "table.sessions"),
        ("api-keys", "#api-keys"),
        ("settings", "table.settings"),
    ] {
        b.click(&format!("#nav a[data-page={page}]")).await;
        b.wait(css).await;
        b.shot(&format!("07-{page}")).await;
    }
    // An API key: the secret is shown once.
    b.click("#nav a[data-page=api-keys]").await;
    b.type_into("#key-name", "backend-prod").await;
    b.click("#key-create").await;
    let token = b.text("#new-key-token").await;
    assert!(token.starts_with("pbk_"), "{token}");
    b.shot("08-api-key-created").await;
    b.client.close().await.unwrap();
}
