//! `passbind audit`: export the tamper-evident log, verify an export (or the database) offline,
//! print the public key that signs checkpoints.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use passbind_server::config::Settings;
use passbind_server::{keys, serve};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Write the events and signed checkpoints as JSON Lines (`passbind-audit/v1`).
    Export {
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        db: Box<ServerArgs>,
    },
    /// Verify an export offline with the public key, or the database directly; reports the
    /// first break precisely and exits non-zero if there is one.
    Verify {
        /// The export to verify (`passbind audit export`, or `GET /v1/audit/export`).
        file: Option<PathBuf>,
        /// The trusted public key (`ed25519:...`, from `passbind audit public-key` or
        /// `GET /v1/audit/public-key`, obtained out of band). Required with a file.
        #[arg(long)]
        public_key: Option<String>,
        /// A checkpoint held elsewhere (JSON, as served by `/v1/audit/checkpoints`), to detect
        /// truncation after the export's last checkpoint. Repeatable.
        #[arg(long = "witnessed")]
        witnessed: Vec<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: Box<ServerArgs>,
    },
    /// Print the public key that signs checkpoints and identity proofs.
    PublicKey {
        #[command(flatten)]
        db: Box<ServerArgs>,
    },
}

/// The server settings that locate the database and the keys (same flags and variables as
/// `passbind serve`).
#[derive(Args)]
pub struct ServerArgs {
    #[command(flatten)]
    settings: Settings,
}

fn signer(settings: &Settings) -> anyhow::Result<passbind_audit::CheckpointSigner> {
    let keys = keys::load(settings)?;
    passbind_audit::CheckpointSigner::from_seed(*keys.audit_seed)
        .map_err(|e| anyhow::anyhow!("audit signing key: {e}"))
}

async fn export_text(settings: &Settings) -> anyhow::Result<(String, [u8; 32])> {
    let signer = signer(settings)?;
    let store = serve::open_store(settings).await?;
    let now = passbind_core::ports::Clock::now(&passbind_server::adapters::SystemClock);
    let text = passbind_core::audit::export_log(&store, &signer.public_key(), now)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((text, signer.public_key()))
}

pub async fn run(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Export { out, db } => {
            let (text, _) = export_text(&db.settings).await?;
            match out {
                Some(path) => {
                    std::fs::write(&path, text)
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("wrote {}", path.display());
                }
                None => print!("{text}"),
            }
            Ok(())
        }
        AuditCommand::PublicKey { db } => {
            let s = signer(&db.settings)?;
            println!("{}", s.public_key_text());
            Ok(())
        }
        AuditCommand::Verify {
            file,
            public_key,
            witnessed,
            json,
            db,
        } => {
            let (text, key) = match file {
                Some(path) => {
                    let Some(pk) = public_key else {
                        bail!("verifying a file needs --public-key (the key you trust, obtained out of band)");
                    };
                    let key = passbind_audit::parse_public_key(&pk)
                        .map_err(|e| anyhow::anyhow!("--public-key: {e}"))?;
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    (text, key)
                }
                None => {
                    let (text, own) = export_text(&db.settings).await?;
                    let key = match public_key {
                        Some(pk) => passbind_audit::parse_public_key(&pk)
                            .map_err(|e| anyhow::anyhow!("--public-key: {e}"))?,
                        None => own,
                    };
                    (text, key)
                }
            };
            let mut options = passbind_audit::VerifyOptions::default();
            for w in witnessed {
                let t = std::fs::read_to_string(&w)
                    .with_context(|| format!("reading {}", w.display()))?;
                let c: passbind_audit::Checkpoint = serde_json::from_str(&t)
                    .with_context(|| format!("{} is not a checkpoint", w.display()))?;
                options.witnessed.push(c);
            }
            let report = passbind_audit::verify_text_with(&text, &key, &options);
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "events verified: {}\ncheckpoints verified: {}\nanchored by the last checkpoint: {} events\nnot yet anchored (after the last checkpoint): {} events\npending (accepted, not yet integrated when exported; not missing): {} events",
                    report.events_verified,
                    report.checkpoints_verified,
                    report.anchored_size,
                    report.unanchored_tail,
                    report.pending_events
                );
            }
            match &report.first_break {
                None => {
                    if !json {
                        println!("result: intact");
                    }
                    Ok(())
                }
                Some(b) => {
                    if !json {
                        println!(
                            "result: BROKEN at line {}{}: {:?}: {}",
                            b.line,
                            b.seq.map(|s| format!(" (seq {s})")).unwrap_or_default(),
                            b.kind,
                            b.message
                        );
                    }
                    bail!("the audit log does not verify")
                }
            }
        }
    }
}
