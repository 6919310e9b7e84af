//! Authenticator data (WebAuthn L3 §6.1) parsing.

use crate::error::WebauthnError;
use ciborium::value::Value;

pub(crate) const FLAG_UP: u8 = 0x01;
pub(crate) const FLAG_UV: u8 = 0x04;
pub(crate) const FLAG_BE: u8 = 0x08;
pub(crate) const FLAG_BS: u8 = 0x10;
pub(crate) const FLAG_AT: u8 = 0x40;
pub(crate) const FLAG_ED: u8 = 0x80;

/// The fixed 37-byte prefix of authenticator data.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header<'a> {
    pub rp_id_hash: &'a [u8],
    pub flags: u8,
    pub sign_count: u32,
}

impl Header<'_> {
    pub fn up(&self) -> bool {
        self.flags & FLAG_UP != 0
    }
    pub fn uv(&self) -> bool {
        self.flags & FLAG_UV != 0
    }
    pub fn be(&self) -> bool {
        self.flags & FLAG_BE != 0
    }
    pub fn bs(&self) -> bool {
        self.flags & FLAG_BS != 0
    }
}

pub(crate) fn parse_header(auth_data: &[u8]) -> Result<Header<'_>, WebauthnError> {
    let rp_id_hash = auth_data
        .get(0..32)
        .ok_or_else(|| WebauthnError::malformed("authenticator data shorter than 37 bytes"))?;
    let flags = *auth_data
        .get(32)
        .ok_or_else(|| WebauthnError::malformed("authenticator data shorter than 37 bytes"))?;
    let counter: [u8; 4] = auth_data
        .get(33..37)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| WebauthnError::malformed("authenticator data shorter than 37 bytes"))?;
    Ok(Header {
        rp_id_hash,
        flags,
        sign_count: u32::from_be_bytes(counter),
    })
}

/// Attested credential data (L3 §6.5.2).
#[derive(Debug, Clone)]
pub(crate) struct AttestedCredential<'a> {
    pub aaguid: [u8; 16],
    pub credential_id: &'a [u8],
    /// The exact CBOR bytes of the credential public key as the authenticator wrote them.
    pub public_key_cose: &'a [u8],
    pub public_key_value: Value,
}

/// Fully parsed authenticator data of a registration.
#[derive(Debug, Clone)]
pub(crate) struct FullAuthData<'a> {
    pub header: Header<'a>,
    pub attested: Option<AttestedCredential<'a>>,
}

/// Reads one CBOR item from the front of `input`; returns it and the number of bytes used.
fn read_cbor_item(input: &[u8]) -> Result<(Value, usize), WebauthnError> {
    let mut rdr = input;
    let value: Value = ciborium::de::from_reader(&mut rdr)
        .map_err(|_| WebauthnError::malformed("invalid CBOR in authenticator data"))?;
    Ok((value, input.len() - rdr.len()))
}

/// Parses authenticator data strictly: attested credential data when AT is set, extensions
/// when ED is set, and nothing after them.
pub(crate) fn parse_full(auth_data: &[u8]) -> Result<FullAuthData<'_>, WebauthnError> {
    let header = parse_header(auth_data)?;
    let mut rest = auth_data.get(37..).unwrap_or(&[]);
    let mut attested = None;
    if header.flags & FLAG_AT != 0 {
        let aaguid: [u8; 16] = rest
            .get(0..16)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| WebauthnError::malformed("attested credential data truncated"))?;
        let len_bytes: [u8; 2] = rest
            .get(16..18)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| WebauthnError::malformed("attested credential data truncated"))?;
        let id_len = usize::from(u16::from_be_bytes(len_bytes));
        let credential_id = rest
            .get(18..18 + id_len)
            .ok_or_else(|| WebauthnError::malformed("credential id truncated"))?;
        let key_start = rest.get(18 + id_len..).unwrap_or(&[]);
        let (public_key_value, used) = read_cbor_item(key_start)?;
        let public_key_cose = key_start
            .get(..used)
            .ok_or_else(|| WebauthnError::malformed("credential public key truncated"))?;
        rest = key_start.get(used..).unwrap_or(&[]);
        attested = Some(AttestedCredential {
            aaguid,
            credential_id,
            public_key_cose,
            public_key_value,
        });
    }
    if header.flags & FLAG_ED != 0 {
        let (ext, used) = read_cbor_item(rest)?;
        if !matches!(ext, Value::Map(_)) {
            return Err(WebauthnError::malformed("extensions are not a CBOR map"));
        }
        rest = rest.get(used..).unwrap_or(&[]);
    }
    if !rest.is_empty() {
        return Err(WebauthnError::malformed(
            "trailing bytes after authenticator data",
        ));
    }
    Ok(FullAuthData { header, attested })
}
