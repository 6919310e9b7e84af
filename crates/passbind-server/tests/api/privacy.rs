//! The privacy check: run the flows with distinctive planted personal data, then scan the whole
//! database (the SQLite file and its WAL, or a `pg_dump`) and the logs for it. Nothing may be
//! found in clear.

use crate::common::{register, TestApp};
use passbind_idv::simulator::{DocumentCapture, SimulatorCapture};
use passbind_proto::registration::{CompleteRegistration, OpenRegistration, WorkflowInput};
use passbind_proto::session::SessionState;
use passbind_sdk::device::{Device, Person};
use serde_json::json;
use std::io::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

const GIVEN: &str = "Zebulonplanted";
const FAMILY: &str = "Quixotefamilyplanted";
const DOC_NO: &str = "PLANTEDDOC0987";
const BIRTH: &str = "1961-07-13";
const DISPLAY: &str = "Planted Display Name";
const CUSTOM: &str = "planted-custom-value-55";

/// Every log line the test binary writes, at debug level, whatever the test.
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_writer(move || LogWriter(writer.clone()))
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buf
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn planted_capture(person: &Person) -> SimulatorCapture {
    let mut c = person.enrolment_capture(1);
    c.document = Some(DocumentCapture {
        document_type: "passport".into(),
        issuing_country: "NLD".into(),
        document_number: DOC_NO.into(),
        given_names: GIVEN.into(),
        family_name: FAMILY.into(),
        date_of_birth: BIRTH.into(),
        face_template: person.face.live_capture(99).0,
    });
    c
}

async fn run_all_flows(app: &TestApp) -> (Vec<String>, Vec<String>) {
    let person = Person::new(777);
    let phone = Device::new();
    let mut custom = serde_json::Map::new();
    custom.insert("note".into(), json!(CUSTOM));
    let opened = app
        .client
        .open_registration(&OpenRegistration {
            external_user_id: "privacy-user".into(),
            display_name: Some(DISPLAY.into()),
            prior_biometric: None,
            workflow_input: Some(WorkflowInput {
                custom_data: Some(custom),
            }),
            ttl_seconds: None,
        })
        .await
        .unwrap();
    let capture = planted_capture(&person);
    phone
        .submit_capture(opened.idv.as_ref().unwrap(), &capture)
        .await
        .unwrap();
    assert_eq!(
        app.wait_verdict(&opened.id).await.state,
        SessionState::IdvPassed
    );
    let cred = phone
        .authenticator
        .create(&app.origin(), opened.webauthn.as_ref().unwrap())
        .await
        .unwrap();
    app.client
        .complete_registration(
            &opened.id,
            &CompleteRegistration {
                credential: Some(cred),
                credential_id: None,
                device_label: None,
            },
        )
        .await
        .unwrap();
    // The token the provider issued, and distinctive numbers of the face templates.
    let run = app
        .http
        .get(format!(
            "{}/simulator/v3.6/workflow_runs/{}",
            app.base,
            opened.idv.unwrap().run_id
        ))
        .header(
            "authorization",
            format!("Token token={}", app.simulator_api_token()),
        )
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let ebt = run["output"]["encrypted_biometric_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut numbers: Vec<String> = capture
        .face
        .template
        .iter()
        .take(4)
        .map(|f| f.to_string())
        .collect();
    numbers.extend(
        capture
            .document
            .unwrap()
            .face_template
            .iter()
            .take(4)
            .map(|f| f.to_string()),
    );

    // Step-up, sign-in, recovery: the other flows' data paths.
    let s = app
        .post_json(
            "/v1/step-ups",
            &json!({"external_user_id": "privacy-user", "transaction_context": {"payee": CUSTOM},
                    "workflow_input": {"custom_data": {"note": CUSTOM}}}),
        )
        .await
        .1;
    let idv = serde_json::from_value(s["idv"].clone()).unwrap();
    phone
        .submit_capture(&idv, &person.face_capture(3))
        .await
        .unwrap();
    app.wait_verdict_at("step-ups", s["id"].as_str().unwrap())
        .await;
    let a = phone
        .authenticator
        .get(&app.origin(), &s["webauthn"])
        .await
        .unwrap();
    let r = app
        .post_json(
            &format!("/v1/step-ups/{}/complete", s["id"].as_str().unwrap()),
            &json!({"credential": a}),
        )
        .await;
    assert_eq!(r.0, 200, "{}", r.1);
    register(app, "privacy-user", &person, &Device::new()).await;
    app.post_json("/v1/audit/checkpoints", &json!({})).await;

    let planted = vec![
        GIVEN.into(),
        FAMILY.into(),
        DOC_NO.into(),
        BIRTH.into(),
        DISPLAY.into(),
        CUSTOM.into(),
        ebt,
    ];
    (planted, numbers)
}

fn assert_absent(haystack: &[u8], needles: &[String], where_: &str) {
    let text = String::from_utf8_lossy(haystack);
    for n in needles {
        assert!(
            !text.contains(n.as_str()),
            "{n:?} found in clear in {where_}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_personal_data_in_the_sqlite_file_or_the_logs() {
    logs();
    let app = TestApp::sqlite().await;
    let (planted, numbers) = run_all_flows(&app).await;
    let dir = app.dir.path().to_path_buf();
    let mut db = Vec::new();
    for name in ["passbind.db", "passbind.db-wal"] {
        if let Ok(bytes) = std::fs::read(dir.join(name)) {
            db.extend(bytes);
        }
    }
    assert!(db.len() > 10_000, "the database was read");
    assert!(
        String::from_utf8_lossy(&db).contains("privacy-user"),
        "the scan sees clear text (the opaque external id is stored)"
    );
    assert_absent(&db, &planted, "the SQLite database");
    assert_absent(&db, &numbers, "the SQLite database");
    let log = logs().lock().unwrap().clone();
    assert!(!log.is_empty(), "the logs were captured");
    assert_absent(&log, &planted, "the logs");
    assert_absent(&log, &numbers, "the logs");
    std::io::stderr().flush().ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_personal_data_in_a_postgres_dump_or_the_logs() {
    logs();
    let app = TestApp::postgres().await;
    let (planted, numbers) = run_all_flows(&app).await;
    let store = app.shared_store.as_ref().unwrap();
    let schema: String = store
        .query_raw("SELECT current_schema()::text")
        .await
        .unwrap()[0]
        .text(0)
        .unwrap();
    let url = std::env::var("PASSBIND_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let out = std::process::Command::new("pg_dump")
        .args(["--data-only", "--schema", &schema, &url])
        .output()
        .expect("pg_dump runs (install postgresql-client)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("privacy-user"));
    assert_absent(&out.stdout, &planted, "the PostgreSQL dump");
    assert_absent(&out.stdout, &numbers, "the PostgreSQL dump");
    let log = logs().lock().unwrap().clone();
    assert_absent(&log, &planted, "the logs");
    assert_absent(&log, &numbers, "the logs");
}
