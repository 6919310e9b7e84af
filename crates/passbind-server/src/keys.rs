//! Key material: from settings in production; in dev, generated on first start and kept in
//! `<data dir>/dev-keys.json` (mode 0600) so that a restart can still read what it sealed.

use crate::config::{Mode, Settings};
use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use passbind_core::crypto::KeyRing;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use zeroize::Zeroizing;

/// Every secret key the server uses.
pub struct KeyMaterial {
    pub keyring: KeyRing,
    pub user_ref_key: Zeroizing<[u8; 32]>,
    /// Ed25519 seed that signs audit checkpoints and identity proofs.
    pub audit_seed: Zeroizing<[u8; 32]>,
    pub simulator: SimulatorKeys,
    /// Whether any key was generated (dev) rather than configured.
    pub generated: bool,
}

/// The development simulator's own secrets (it plays the cloud provider).
#[derive(Clone, Serialize, Deserialize)]
pub struct SimulatorKeys {
    pub api_token: String,
    pub webhook_token: String,
    pub ebt_key: String,
}

#[derive(Serialize, Deserialize)]
struct DevKeyFile {
    keyring: BTreeMap<u32, String>,
    user_ref_key: String,
    simulator: SimulatorKeys,
    /// Added after the first release of the file: generated when missing.
    #[serde(default)]
    audit_signing_key: Option<String>,
}

fn random_b64(n: usize) -> anyhow::Result<String> {
    let mut b = vec![0u8; n];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| anyhow::anyhow!("the system random source failed"))?;
    Ok(STANDARD.encode(b))
}

fn key32(b64: &str, what: &str) -> anyhow::Result<[u8; 32]> {
    let raw = Zeroizing::new(
        STANDARD
            .decode(b64.trim())
            .with_context(|| format!("{what}: not base64"))?,
    );
    <[u8; 32]>::try_from(raw.as_slice())
        .map_err(|_| anyhow::anyhow!("{what}: must be 32 bytes, base64-encoded"))
}

/// Parses `VERSION:BASE64KEY[,VERSION:BASE64KEY...]`.
pub fn parse_keyring(spec: &str) -> anyhow::Result<KeyRing> {
    let mut keys = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (v, k) = part
            .split_once(':')
            .context("PASSBIND_KEYRING: each entry is VERSION:BASE64KEY")?;
        let v: u32 = v
            .parse()
            .context("PASSBIND_KEYRING: the version must be a positive integer")?;
        if v == 0 {
            bail!("PASSBIND_KEYRING: versions start at 1");
        }
        keys.push((v, key32(k, "PASSBIND_KEYRING")?));
    }
    KeyRing::new(keys).map_err(|_| anyhow::anyhow!("PASSBIND_KEYRING: no keys"))
}

pub fn load(settings: &Settings) -> anyhow::Result<KeyMaterial> {
    let configured_ring = settings
        .keyring
        .as_ref()
        .filter(|s| !s.0.is_empty())
        .map(|s| parse_keyring(&s.0))
        .transpose()?;
    let configured_ref = settings
        .user_ref_key
        .as_ref()
        .filter(|s| !s.0.is_empty())
        .map(|s| key32(&s.0, "PASSBIND_USER_REF_KEY"))
        .transpose()?;

    let configured_audit = settings
        .audit_signing_key
        .as_ref()
        .filter(|s| !s.0.is_empty())
        .map(|s| key32(&s.0, "PASSBIND_AUDIT_SIGNING_KEY"))
        .transpose()?;

    if settings.mode == Mode::Production {
        let (Some(keyring), Some(user_ref), Some(audit)) =
            (configured_ring, configured_ref, configured_audit)
        else {
            bail!(
                "production mode needs PASSBIND_KEYRING, PASSBIND_USER_REF_KEY and \
                 PASSBIND_AUDIT_SIGNING_KEY (generated keys are for dev only); see README, \
                 \"Configuration\""
            );
        };
        return Ok(KeyMaterial {
            keyring,
            user_ref_key: Zeroizing::new(user_ref),
            audit_seed: Zeroizing::new(audit),
            simulator: SimulatorKeys {
                api_token: String::new(),
                webhook_token: String::new(),
                ebt_key: String::new(),
            },
            generated: false,
        });
    }

    let path = settings.data_dir.join("dev-keys.json");
    let file: DevKeyFile = if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let mut f: DevKeyFile = serde_json::from_str(&text)
            .with_context(|| format!("{} is corrupt", path.display()))?;
        if f.audit_signing_key.is_none() {
            f.audit_signing_key = Some(random_b64(32)?);
            rewrite_private(&path, &serde_json::to_string_pretty(&f)?)?;
        }
        f
    } else {
        let f = DevKeyFile {
            keyring: BTreeMap::from([(1, random_b64(32)?)]),
            user_ref_key: random_b64(32)?,
            simulator: SimulatorKeys {
                api_token: random_b64(24)?,
                webhook_token: random_b64(24)?,
                ebt_key: random_b64(32)?,
            },
            audit_signing_key: Some(random_b64(32)?),
        };
        write_private(&path, &serde_json::to_string_pretty(&f)?)?;
        f
    };
    let file_ring = KeyRing::new(
        file.keyring
            .iter()
            .map(|(v, k)| Ok((*v, key32(k, "dev-keys.json keyring")?)))
            .collect::<anyhow::Result<Vec<_>>>()?,
    )
    .map_err(|_| anyhow::anyhow!("dev-keys.json: empty keyring"))?;
    let generated =
        configured_ring.is_none() || configured_ref.is_none() || configured_audit.is_none();
    let file_audit = match &file.audit_signing_key {
        Some(k) => key32(k, "dev-keys.json audit_signing_key")?,
        None => bail!("dev-keys.json: no audit signing key"),
    };
    Ok(KeyMaterial {
        keyring: configured_ring.unwrap_or(file_ring),
        user_ref_key: Zeroizing::new(match configured_ref {
            Some(k) => k,
            None => key32(&file.user_ref_key, "dev-keys.json user_ref_key")?,
        }),
        audit_seed: Zeroizing::new(configured_audit.unwrap_or(file_audit)),
        simulator: file.simulator,
        generated,
    })
}

fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

fn rewrite_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.new");
    let _ = std::fs::remove_file(&tmp);
    write_private(&tmp, text)?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

/// Decodes the simulator's base64 EBT key.
pub fn simulator_ebt_key(keys: &SimulatorKeys) -> anyhow::Result<[u8; 32]> {
    key32(&keys.ebt_key, "simulator ebt key")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keyring_spec() {
        let k = STANDARD.encode([1u8; 32]);
        let ring = parse_keyring(&format!("1:{k}, 3:{k}")).unwrap();
        assert_eq!(ring.current_version(), 3);
        assert!(parse_keyring("").is_err());
        assert!(parse_keyring("1:short").is_err());
        assert!(parse_keyring(&format!("0:{k}")).is_err());
        assert!(parse_keyring(&format!("x:{k}")).is_err());
    }
}
