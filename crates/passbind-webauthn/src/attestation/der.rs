//! A minimal, non-panicking DER TLV reader for the few ASN.1 structures read by hand
//! (Android KeyDescription, id-fido-gen-ce-aaguid, RSAPublicKey).

/// One DER element.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tlv<'a> {
    /// 0 universal, 1 application, 2 context-specific, 3 private.
    pub class: u8,
    pub tag: u32,
    pub value: &'a [u8],
}

/// Reads one element from the front of `input`; returns it and the remaining bytes.
/// Only definite lengths (DER) are accepted.
pub(crate) fn read_tlv(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let first = *input.first()?;
    let class = first >> 6;
    let mut pos = 1usize;
    let mut tag = u32::from(first & 0x1f);
    if tag == 0x1f {
        tag = 0;
        loop {
            let b = *input.get(pos)?;
            pos += 1;
            tag = tag.checked_mul(128)?.checked_add(u32::from(b & 0x7f))?;
            if b & 0x80 == 0 {
                break;
            }
            if pos > 6 {
                return None;
            }
        }
    }
    let len_byte = *input.get(pos)?;
    pos += 1;
    let len = if len_byte & 0x80 == 0 {
        usize::from(len_byte)
    } else {
        let n = usize::from(len_byte & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut l = 0usize;
        for _ in 0..n {
            l = l
                .checked_mul(256)?
                .checked_add(usize::from(*input.get(pos)?))?;
            pos += 1;
        }
        l
    };
    let end = pos.checked_add(len)?;
    let value = input.get(pos..end)?;
    let rest = input.get(end..)?;
    Some((Tlv { class, tag, value }, rest))
}
