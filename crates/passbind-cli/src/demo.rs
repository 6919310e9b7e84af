//! `passbind demo`: all five flows end to end against an in-process server, as an integrator
//! would run them: HTTP, a software authenticator, simulated captures, the simulator's real
//! signed webhooks, and the failure paths. One line per step; non-zero exit on any surprise.

use anyhow::{bail, Context};
use passbind_proto::registration::{CompleteRegistration, OpenRegistration};
use passbind_proto::session::{IdvView, SessionState, SessionView};
use passbind_sdk::client::{ClientError, CoreClient};
use passbind_sdk::device::{Device, Person};
use passbind_server::Settings;
use serde_json::{json, Value};
use std::time::Duration;

struct Demo {
    client: CoreClient,
    origin: String,
    steps: usize,
    failures: usize,
}

impl Demo {
    fn ok(&mut self, what: &str) {
        self.steps += 1;
        println!("  ok    {what}");
    }

    fn fail(&mut self, what: &str, why: &str) {
        self.steps += 1;
        self.failures += 1;
        println!("  FAIL  {what}: {why}");
    }

    /// Records a step that must succeed.
    fn check<T>(&mut self, what: &str, r: Result<T, ClientError>) -> anyhow::Result<T> {
        match r {
            Ok(v) => {
                self.ok(what);
                Ok(v)
            }
            Err(e) => {
                self.fail(what, &e.to_string());
                Err(anyhow::anyhow!("{what}: {e}"))
            }
        }
    }

    /// Records a step that must be refused with `code`.
    fn refused<T>(&mut self, what: &str, code: &str, r: Result<T, ClientError>) {
        match r {
            Err(e) if e.code() == Some(code) => self.ok(&format!("{what} (refused: {code})")),
            Err(e) => self.fail(what, &format!("expected {code}, got {e}")),
            Ok(_) => self.fail(what, &format!("expected {code}, but it succeeded")),
        }
    }

    fn expect(&mut self, what: &str, cond: bool, detail: &str) {
        if cond {
            self.ok(what);
        } else {
            self.fail(what, detail);
        }
    }

    async fn verdict(&self, resource: &str, id: &str) -> anyhow::Result<SessionView> {
        Ok(self
            .client
            .wait_for_verdict(&format!("/v1/{resource}/{id}"), Duration::from_secs(10))
            .await?)
    }

    async fn capture(
        &self,
        device: &Device,
        s: &SessionView,
        capture: &passbind_idv::simulator::SimulatorCapture,
    ) -> anyhow::Result<()> {
        let idv: &IdvView = s.idv.as_ref().context("session without IDV")?;
        device.submit_capture(idv, capture).await?;
        Ok(())
    }

    async fn create(&self, device: &Device, s: &SessionView) -> anyhow::Result<Value> {
        let options = s.webauthn.as_ref().context("no WebAuthn options")?;
        Ok(device.authenticator.create(&self.origin, options).await?)
    }

    async fn get(&self, device: &Device, s: &SessionView) -> anyhow::Result<Value> {
        let options = s.webauthn.as_ref().context("no WebAuthn options")?;
        Ok(device.authenticator.get(&self.origin, options).await?)
    }
}

pub async fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let settings = Settings::for_tests(dir.path().to_path_buf(), None);
    let server = passbind_server::start(settings, None)
        .await
        .context("starting the demo server")?;
    let key = server
        .engine
        .create_api_key(
            &passbind_core::Actor::system(),
            "demo",
            &["flows".into(), "users".into(), "audit".into()],
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "Passbind demo: a server on {} (dev mode, temporary SQLite, IDV simulator)\n",
        server.base_url()
    );
    let mut d = Demo {
        client: CoreClient::new(&server.base_url(), &key.token),
        origin: format!("http://localhost:{}", server.addr.port()),
        steps: 0,
        failures: 0,
    };
    let result = flows(&mut d).await;
    server.stop().await?;
    println!();
    if let Err(e) = result {
        println!("stopped early: {e:#}");
        d.failures += 1;
    }
    println!(
        "{} steps, {} passed, {} failed",
        d.steps,
        d.steps - d.failures.min(d.steps),
        d.failures
    );
    if d.failures > 0 {
        bail!("the demo did not behave as expected");
    }
    Ok(())
}

async fn flows(d: &mut Demo) -> anyhow::Result<()> {
    let alice = Person::new(1);
    let mallory = Person::new(666);
    let phone = Device::new();

    println!("1. Registration: document + live face, then a device-bound passkey");
    let open = OpenRegistration {
        external_user_id: "alice".into(),
        display_name: Some("Alice".into()),
        prior_biometric: None,
        workflow_input: None,
        ttl_seconds: None,
    };
    let s = d.check(
        "open registration for alice",
        d.client.open_registration(&open).await,
    )?;
    let early = CompleteRegistration {
        credential: Some(d.create(&phone, &s).await?),
        credential_id: None,
        device_label: Some("alice's phone".into()),
    };
    let r = d.client.complete_registration(&s.id, &early).await;
    d.refused(
        "complete before the identity verification",
        "invalid_state",
        r,
    );
    d.capture(&phone, &s, &alice.enrolment_capture(1)).await?;
    let v = d.verdict("registrations", &s.id).await?;
    d.expect(
        "simulator verdict by signed webhook: passed",
        v.state == SessionState::IdvPassed,
        &format!("state {:?}", v.state),
    );
    let r = d.client.complete_registration(&s.id, &early).await;
    d.check("bind the passkey to alice", r)?;

    println!("2. Routine sign-in: plain WebAuthn");
    let s = d.check(
        "begin sign-in",
        d.client
            .open("authentications", &json!({"external_user_id": "alice"}))
            .await,
    )?;
    let a = d.get(&phone, &s).await?;
    let r = d
        .client
        .act(
            "authentications",
            &s.id,
            "complete",
            &json!({ "credential": a }),
        )
        .await;
    d.check("signed in with the passkey", r)?;
    let r = d
        .client
        .act(
            "authentications",
            &s.id,
            "complete",
            &json!({ "credential": a }),
        )
        .await;
    d.refused("replay the same assertion", "invalid_state", r);

    println!("3. In-app step-up: live face match, assertion bound to the transaction");
    let tx = json!({"amount": "250.00", "currency": "EUR", "payee": "ACME"});
    let s = d.check(
        "open step-up for a payment",
        d.client
            .open(
                "step-ups",
                &json!({"external_user_id": "alice", "transaction_context": tx}),
            )
            .await,
    )?;
    d.capture(&phone, &s, &mallory.face_capture(1)).await?;
    let v = d.verdict("step-ups", &s.id).await?;
    d.expect(
        "another person's face does not match",
        v.state == SessionState::CaptureFailed,
        &format!("state {:?}", v.state),
    );
    let a = d.get(&phone, &s).await?;
    let r = d
        .client
        .act("step-ups", &s.id, "complete", &json!({ "credential": a }))
        .await;
    d.refused("complete after a mismatch", "biometric_mismatch", r);
    let retry = d.check(
        "start a new capture",
        d.client.act("step-ups", &s.id, "retry", &json!({})).await,
    )?;
    d.capture(&phone, &retry, &alice.face_capture(2)).await?;
    let v = d.verdict("step-ups", &s.id).await?;
    d.expect(
        "alice's live face matches",
        v.state == SessionState::IdvPassed,
        &format!("state {:?}", v.state),
    );
    let r = d
        .client
        .act("step-ups", &s.id, "complete", &json!({ "credential": a }))
        .await;
    d.check("payment approved with a bound assertion", r)?;

    println!("4. Cross-platform step-up: browser opens, phone finishes");
    let s = d.check(
        "browser opens a cross-platform session",
        d.client
            .open(
                "cross-platform-sessions",
                &json!({"external_user_id": "alice"}),
            )
            .await,
    )?;
    let token = s
        .handoff
        .as_ref()
        .map(|h| h.token.clone())
        .context("no handoff token")?;
    let mobile = d.check(
        "phone consumes the handoff token",
        d.client
            .post::<_, SessionView>(
                "/v1/cross-platform-sessions/handoff",
                &json!({ "handoff_token": token }),
            )
            .await,
    )?;
    let r = d
        .client
        .post::<_, SessionView>(
            "/v1/cross-platform-sessions/handoff",
            &json!({ "handoff_token": token }),
        )
        .await;
    d.refused("use the handoff token twice", "handoff_token_invalid", r);
    d.capture(&phone, &mobile, &alice.face_capture(3)).await?;
    d.verdict("cross-platform-sessions", &s.id).await?;
    let a = d.get(&phone, &mobile).await?;
    let r = d
        .client
        .act(
            "cross-platform-sessions",
            &s.id,
            "complete",
            &json!({ "credential": a }),
        )
        .await;
    d.check("phone completes", r)?;
    let polled: SessionView = d
        .client
        .get(&format!("/v1/cross-platform-sessions/{}", s.id))
        .await?;
    d.expect(
        "browser polls: completed",
        polled.state == SessionState::Completed,
        &format!("state {:?}", polled.state),
    );
    let s = d.check(
        "open another one",
        d.client
            .open(
                "cross-platform-sessions",
                &json!({"external_user_id": "alice"}),
            )
            .await,
    )?;
    d.check(
        "browser cancels it",
        d.client
            .act("cross-platform-sessions", &s.id, "cancel", &json!({}))
            .await,
    )?;
    let token = s
        .handoff
        .as_ref()
        .map(|h| h.token.clone())
        .unwrap_or_default();
    let r = d
        .client
        .post::<_, SessionView>(
            "/v1/cross-platform-sessions/handoff",
            &json!({ "handoff_token": token }),
        )
        .await;
    d.refused(
        "phone uses the cancelled session's token",
        "handoff_token_invalid",
        r,
    );
    let r = d
        .client
        .act(
            "cross-platform-sessions",
            &s.id,
            "complete",
            &json!({ "credential": {} }),
        )
        .await;
    d.refused("complete the cancelled session", "invalid_state", r);

    println!("5. Account recovery on a new phone by a live face match");
    let new_phone = Device::new();
    let s = d.check(
        "a stranger starts recovery of alice's account",
        d.client
            .open("recoveries", &json!({"external_user_id": "alice"}))
            .await,
    )?;
    d.capture(&new_phone, &s, &mallory.face_capture(4)).await?;
    d.verdict("recoveries", &s.id).await?;
    let r = d
        .client
        .act("recoveries", &s.id, "continuation", &json!({}))
        .await;
    d.refused(
        "the stranger gets no continuation",
        "recovery_biometric_mismatch",
        r,
    );
    let s = d.check(
        "alice starts recovery on her new phone",
        d.client
            .open("recoveries", &json!({"external_user_id": "alice"}))
            .await,
    )?;
    d.capture(&new_phone, &s, &alice.face_capture(5)).await?;
    d.verdict("recoveries", &s.id).await?;
    let c = d.check(
        "face matches: continuation issued",
        d.client
            .act("recoveries", &s.id, "continuation", &json!({}))
            .await,
    )?;
    let cont = c
        .continuation
        .as_ref()
        .map(|c| c.token.clone())
        .context("no continuation")?;
    let ex = d.check(
        "exchange it for the replacement registration",
        d.client
            .post::<_, SessionView>("/v1/recoveries/exchange", &json!({ "continuation": cont }))
            .await,
    )?;
    let cred = d.create(&new_phone, &ex).await?;
    let r = d
        .client
        .act(
            "recoveries",
            &s.id,
            "complete",
            &json!({ "credential": cred }),
        )
        .await;
    d.check("replacement passkey bound", r)?;
    let user: passbind_proto::users::UserView = d.client.get("/v1/users/alice").await?;
    let active = user
        .credentials
        .iter()
        .filter(|c| c.revoked_at.is_none())
        .count();
    d.expect(
        "the lost phone's passkey is revoked",
        active == 1 && user.credentials.len() == 2,
        &format!("{active} active of {}", user.credentials.len()),
    );
    // Usernameless, so that the old phone offers its (revoked) passkey and the server decides.
    let s: SessionView = d.client.open("authentications", &json!({})).await?;
    let a = d.get(&phone, &s).await?;
    let r = d
        .client
        .act(
            "authentications",
            &s.id,
            "complete",
            &json!({ "credential": a }),
        )
        .await;
    d.refused(
        "the lost phone's passkey can no longer sign in",
        "webauthn_verification_failed",
        r,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic)]

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_demo_runs_every_flow_as_expected() {
        if let Err(e) = super::run().await {
            panic!("passbind demo failed: {e:#}");
        }
    }
}
