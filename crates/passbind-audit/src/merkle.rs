//! The Merkle tree of RFC 9162 (Certificate Transparency v2), §2.1.
//!
//! * leaf hash: `SHA-256(0x00 || leaf bytes)` (for this log, the leaf bytes are an event's
//!   canonical encoding, so the leaf hash *is* the event hash);
//! * interior node: `SHA-256(0x01 || left || right)`;
//! * `MTH({})` = `SHA-256("")`; `MTH({d0})` = leaf hash of `d0`; for `n > 1`, with `k` the
//!   largest power of two smaller than `n`, `MTH(D[n]) = node(MTH(D[0:k]), MTH(D[k:n]))`.
//!
//! All functions here take the **leaf hashes** (already `SHA-256(0x00 || ..)`), never raw
//! leaves. Proof generation walks the whole slice (O(n) hashing); [`Frontier`] computes the
//! root of a growing log in O(log n) state.

use ring::digest::{digest, Context, SHA256};

/// A SHA-256 output.
pub type Hash = [u8; 32];

/// Errors of proof generation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    /// Inclusion proof for an index not in the tree.
    #[error("leaf index {index} is not in a tree of size {size}")]
    IndexOutOfRange {
        /// The requested index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// Consistency proof from a size larger than the tree.
    #[error("old size {old_size} is larger than the tree size {size}")]
    OldSizeTooLarge {
        /// The requested old size.
        old_size: u64,
        /// The tree size.
        size: u64,
    },
}

fn finish(ctx: Context) -> Hash {
    let d = ctx.finish();
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// `SHA-256(0x00 || data)`: the RFC 9162 leaf hash.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut ctx = Context::new(&SHA256);
    ctx.update(&[0x00]);
    ctx.update(data);
    finish(ctx)
}

/// `SHA-256(0x01 || left || right)`: the RFC 9162 interior node hash.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut ctx = Context::new(&SHA256);
    ctx.update(&[0x01]);
    ctx.update(left);
    ctx.update(right);
    finish(ctx)
}

/// The root of the empty tree, `SHA-256("")`.
pub fn empty_root() -> Hash {
    let d = digest(&SHA256, b"");
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Largest power of two strictly smaller than `n`, for `n >= 2` (1 otherwise; callers only
/// split slices of two or more).
fn split_point(n: usize) -> usize {
    let mut k = 1usize;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// `MTH(D[n])` over leaf hashes.
pub fn root(leaf_hashes: &[Hash]) -> Hash {
    match leaf_hashes {
        [] => empty_root(),
        [one] => *one,
        _ => {
            let (left, right) = leaf_hashes.split_at(split_point(leaf_hashes.len()));
            node_hash(&root(left), &root(right))
        }
    }
}

fn to_usize(v: u64) -> Option<usize> {
    usize::try_from(v).ok()
}

/// The audit path (`PATH(m, D[n])`, RFC 9162 §2.1.3.1) of leaf `index` in the tree formed by
/// all of `leaf_hashes`, from the leaf's sibling up to the root's child.
pub fn inclusion_proof(leaf_hashes: &[Hash], index: u64) -> Result<Vec<Hash>, MerkleError> {
    let size = leaf_hashes.len() as u64;
    let out_of_range = MerkleError::IndexOutOfRange { index, size };
    let m = to_usize(index).ok_or(out_of_range.clone())?;
    if m >= leaf_hashes.len() {
        return Err(out_of_range);
    }
    let mut proof = Vec::new();
    path(m, leaf_hashes, &mut proof);
    Ok(proof)
}

fn path(m: usize, d: &[Hash], out: &mut Vec<Hash>) {
    if d.len() <= 1 {
        return;
    }
    let (left, right) = d.split_at(split_point(d.len()));
    if m < left.len() {
        path(m, left, out);
        out.push(root(right));
    } else {
        path(m - left.len(), right, out);
        out.push(root(left));
    }
}

/// Verify an inclusion proof with the algorithm of RFC 9162 §2.1.3.2.
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    tree_size: u64,
    proof: &[Hash],
    root: &Hash,
) -> bool {
    if index >= tree_size {
        return false;
    }
    let mut fnode = index;
    let mut snode = tree_size - 1;
    let mut r = *leaf_hash;
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

/// The consistency proof (`PROOF(m, D[n])`, RFC 9162 §2.1.4.1) between the tree of the first
/// `old_size` leaves and the tree of all of `leaf_hashes`. Empty when `old_size` is 0 or equals
/// the tree size.
pub fn consistency_proof(leaf_hashes: &[Hash], old_size: u64) -> Result<Vec<Hash>, MerkleError> {
    let size = leaf_hashes.len() as u64;
    let too_large = MerkleError::OldSizeTooLarge { old_size, size };
    let m = to_usize(old_size).ok_or(too_large.clone())?;
    if m > leaf_hashes.len() {
        return Err(too_large);
    }
    let mut proof = Vec::new();
    if m > 0 {
        subproof(m, leaf_hashes, true, &mut proof);
    }
    Ok(proof)
}

fn subproof(m: usize, d: &[Hash], complete: bool, out: &mut Vec<Hash>) {
    let n = d.len();
    if m == n {
        if !complete {
            out.push(root(d));
        }
        return;
    }
    // Here 0 < m < n, so n >= 2.
    let (left, right) = d.split_at(split_point(n));
    if m <= left.len() {
        subproof(m, left, complete, out);
        out.push(root(right));
    } else {
        subproof(m - left.len(), right, false, out);
        out.push(root(left));
    }
}

/// Verify a consistency proof with the algorithm of RFC 9162 §2.1.4.2.
///
/// Edge cases (which the RFC leaves to the caller): `old_size > new_size` fails;
/// `old_size == new_size` succeeds iff the proof is empty and the roots are equal;
/// `old_size == 0` succeeds iff the proof is empty and `old_root` is the empty-tree root.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    if old_size == 0 {
        return proof.is_empty() && *old_root == empty_root();
    }
    // 0 < old_size < new_size.
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let mut fnode = old_size - 1;
    let mut snode = new_size - 1;
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let mut fr = *first;
    let mut sr = *first;
    for c in rest {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    fr == *old_root && sr == *new_root && snode == 0
}

/// The right edge ("compact range" from 0, or frontier) of a Merkle tree: the roots of the
/// perfect subtrees that the binary representation of the size decomposes the tree into,
/// largest (leftmost) first. `O(log n)` hashes of state are enough to append and to compute
/// the root, so a server can keep the current root without loading every leaf: store
/// [`Frontier::size`] and [`Frontier::hashes`] next to the log head and rebuild with
/// [`Frontier::from_parts`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    hashes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuild from stored parts; `None` unless `hashes.len()` is the number of one bits of
    /// `size` (one perfect subtree per bit).
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Option<Self> {
        (hashes.len() == size.count_ones() as usize).then_some(Self { size, hashes })
    }

    /// The frontier of the tree made of `leaf_hashes`.
    pub fn from_leaves(leaf_hashes: &[Hash]) -> Self {
        let mut f = Self::new();
        for leaf in leaf_hashes {
            f.append(*leaf);
        }
        f
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The perfect-subtree roots, largest (leftmost) first.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// Append one leaf hash.
    pub fn append(&mut self, leaf_hash: Hash) {
        let mut carry = leaf_hash;
        let mut s = self.size;
        while s & 1 == 1 {
            match self.hashes.pop() {
                Some(left) => carry = node_hash(&left, &carry),
                None => break,
            }
            s >>= 1;
        }
        self.hashes.push(carry);
        self.size += 1;
    }

    /// `MTH` of the tree: the subtree roots folded from the right.
    pub fn root(&self) -> Hash {
        let mut iter = self.hashes.iter().rev();
        let Some(last) = iter.next() else {
            return empty_root();
        };
        iter.fold(*last, |acc, left| node_hash(left, &acc))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn h(s: &str) -> Hash {
        let v = hex::decode(s).unwrap();
        v.try_into().unwrap()
    }

    /// The 8-leaf test tree used by the certificate-transparency implementations
    /// (leaf inputs given in hex).
    fn ct_leaves() -> Vec<Hash> {
        [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
        .iter()
        .map(|x| leaf_hash(&hex::decode(x).unwrap()))
        .collect()
    }

    #[test]
    fn empty_tree_root() {
        assert_eq!(
            hex::encode(root(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn ct_test_vector_roots() {
        let leaves = ct_leaves();
        let expected = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        for (i, e) in expected.iter().enumerate() {
            assert_eq!(hex::encode(root(&leaves[..=i])), *e, "size {}", i + 1);
        }
    }

    #[test]
    fn ct_test_vector_inclusion() {
        let leaves = ct_leaves();
        let proof = inclusion_proof(&leaves, 0).unwrap();
        assert_eq!(
            proof,
            vec![
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ]
        );
        let r = root(&leaves);
        assert!(verify_inclusion(&leaves[0], 0, 8, &proof, &r));
        let proof5 = inclusion_proof(&leaves, 5).unwrap();
        assert_eq!(
            proof5,
            vec![
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ]
        );
        assert!(verify_inclusion(&leaves[5], 5, 8, &proof5, &r));
    }

    #[test]
    fn ct_test_vector_consistency() {
        let leaves = ct_leaves();
        assert_eq!(
            consistency_proof(&leaves, 1).unwrap(),
            vec![
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ]
        );
        assert_eq!(
            consistency_proof(&leaves, 6).unwrap(),
            vec![
                h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ]
        );
        assert_eq!(
            consistency_proof(&leaves[..5], 2).unwrap(),
            vec![
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            ]
        );
        for (old, new) in [(1usize, 8usize), (6, 8), (2, 5)] {
            let p = consistency_proof(&leaves[..new], old as u64).unwrap();
            assert!(verify_consistency(
                old as u64,
                new as u64,
                &root(&leaves[..old]),
                &root(&leaves[..new]),
                &p
            ));
        }
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("leaf {i}").as_bytes()))
            .collect()
    }

    fn flip(h: &Hash, bit: usize) -> Hash {
        let mut x = *h;
        x[bit / 8] ^= 1 << (bit % 8);
        x
    }

    /// One bit in every byte of a hash, the position inside the byte rotating with `salt`:
    /// over the salts a run goes through, every one of the 256 bit positions is flipped
    /// (flipping all 256 bits of every value of every case is 8x slower in a debug build and
    /// tests SHA-256 rather than the proof logic).
    fn bits(salt: usize) -> impl Iterator<Item = usize> {
        (0..32).map(move |byte| byte * 8 + (byte + salt) % 8)
    }

    #[test]
    fn bit_rotation_covers_every_bit() {
        let mut seen = [false; 256];
        for salt in 0..8 {
            for b in bits(salt) {
                seen[b] = true;
            }
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn inclusion_brute_force() {
        let all = leaves(64);
        for size in 1..=64usize {
            let d = &all[..size];
            let r = root(d);
            let n = size as u64;
            for index in 0..size {
                let i = index as u64;
                let proof = inclusion_proof(d, i).unwrap();
                assert!(
                    verify_inclusion(&d[index], i, n, &proof, &r),
                    "{size} {index}"
                );
                // a flipped bit in any proof element
                for e in 0..proof.len() {
                    for bit in bits(index + e) {
                        let mut bad = proof.clone();
                        bad[e] = flip(&bad[e], bit);
                        assert!(!verify_inclusion(&d[index], i, n, &bad, &r));
                    }
                }
                // ... in the root or the leaf
                for bit in bits(index + size) {
                    assert!(!verify_inclusion(&d[index], i, n, &proof, &flip(&r, bit)));
                    assert!(!verify_inclusion(&flip(&d[index], bit), i, n, &proof, &r));
                }
                // ... in the index (all 64 bits)
                for bit in 0..64 {
                    assert!(
                        !verify_inclusion(&d[index], i ^ (1 << bit), n, &proof, &r),
                        "index flip {size} {index} bit {bit}"
                    );
                }
                // ... in the tree size (all 64 bits): fails unless the flipped size gives the
                // same sequence of left/right steps for this index, which the RFC algorithm
                // cannot tell apart (the root, bound to its size by a signed checkpoint, is
                // what pins the size).
                for bit in 0..64 {
                    let other = n ^ (1 << bit);
                    if verify_inclusion(&d[index], i, other, &proof, &r) {
                        assert!(
                            same_path_shape(i, n, other),
                            "size flip {size} {index} {bit}"
                        );
                    }
                }
                // a truncated or extended proof fails
                if !proof.is_empty() {
                    assert!(!verify_inclusion(&d[index], i, n, &proof[1..], &r));
                    assert!(!verify_inclusion(
                        &d[index],
                        i,
                        n,
                        &proof[..proof.len() - 1],
                        &r
                    ));
                }
                let mut longer = proof.clone();
                longer.push(r);
                assert!(!verify_inclusion(&d[index], i, n, &longer, &r));
            }
            assert!(inclusion_proof(d, n).is_err());
            assert!(!verify_inclusion(&d[0], n, n, &[], &r));
        }
    }

    /// The sequence of (sibling-on-left?) steps the RFC verifier takes, or None when it fails
    /// structurally.
    fn steps(index: u64, size: u64) -> Option<Vec<bool>> {
        if index >= size {
            return None;
        }
        let (mut f, mut s) = (index, size - 1);
        let mut out = Vec::new();
        while s != 0 {
            if f & 1 == 1 || f == s {
                out.push(true);
                if f & 1 == 0 {
                    while f & 1 == 0 && f != 0 {
                        f >>= 1;
                        s >>= 1;
                    }
                }
            } else {
                out.push(false);
            }
            f >>= 1;
            s >>= 1;
        }
        Some(out)
    }

    fn same_path_shape(index: u64, a: u64, b: u64) -> bool {
        steps(index, a).is_some() && steps(index, a) == steps(index, b)
    }

    /// The branch sequence of the RFC consistency verifier for (old, new), 0 < old < new.
    fn consistency_shape(old: u64, new: u64) -> Option<Vec<bool>> {
        if old == 0 || old >= new {
            return None;
        }
        let (mut f, mut s) = (old - 1, new - 1);
        while f & 1 == 1 {
            f >>= 1;
            s >>= 1;
        }
        let mut out = Vec::new();
        while s != 0 {
            if f & 1 == 1 || f == s {
                out.push(true);
                if f & 1 == 0 {
                    while f & 1 == 0 && f != 0 {
                        f >>= 1;
                        s >>= 1;
                    }
                }
            } else {
                out.push(false);
            }
            f >>= 1;
            s >>= 1;
        }
        Some(out)
    }

    #[test]
    fn consistency_brute_force() {
        let all = leaves(64);
        for new in 1..=64usize {
            let dn = &all[..new];
            let new_root = root(dn);
            for old in 0..=new {
                let old_root = root(&all[..old]);
                let proof = consistency_proof(dn, old as u64).unwrap();
                let (o, n) = (old as u64, new as u64);
                assert!(
                    verify_consistency(o, n, &old_root, &new_root, &proof),
                    "{old} -> {new}"
                );
                for e in 0..proof.len() {
                    for bit in bits(old + e) {
                        let mut bad = proof.clone();
                        bad[e] = flip(&bad[e], bit);
                        assert!(!verify_consistency(o, n, &old_root, &new_root, &bad));
                    }
                }
                for bit in bits(old + new) {
                    assert!(!verify_consistency(
                        o,
                        n,
                        &flip(&old_root, bit),
                        &new_root,
                        &proof
                    ));
                    // The empty tree is a prefix of every tree: with old size 0 the new root
                    // is (correctly) not constrained.
                    if old > 0 {
                        assert!(!verify_consistency(
                            o,
                            n,
                            &old_root,
                            &flip(&new_root, bit),
                            &proof
                        ));
                    }
                }
                // A flipped old size (all 64 bits) fails.
                for bit in 0..64 {
                    let other = o ^ (1 << bit);
                    assert!(
                        !verify_consistency(other, n, &old_root, &new_root, &proof),
                        "old size flip {old} -> {new} bit {bit}"
                    );
                }
                // A flipped new size fails unless it is indistinguishable to the algorithm
                // (same reasoning as for inclusion: the signed root pins the size); record it.
                for bit in 0..64 {
                    let other = n ^ (1 << bit);
                    if verify_consistency(o, other, &old_root, &new_root, &proof) {
                        assert!(
                            old == 0 || consistency_shape(o, n) == consistency_shape(o, other),
                            "new size flip {old} -> {new} bit {bit} to {other}"
                        );
                    }
                }
                if !proof.is_empty() {
                    assert!(!verify_consistency(o, n, &old_root, &new_root, &proof[1..]));
                    assert!(!verify_consistency(
                        o,
                        n,
                        &old_root,
                        &new_root,
                        &proof[..proof.len() - 1]
                    ));
                    let mut longer = proof.clone();
                    longer.push(new_root);
                    assert!(!verify_consistency(o, n, &old_root, &new_root, &longer));
                }
            }
            assert!(consistency_proof(dn, new as u64 + 1).is_err());
        }
    }

    #[test]
    fn frontier_matches_root() {
        let all = leaves(200);
        let mut f = Frontier::new();
        assert_eq!(f.root(), empty_root());
        for (i, leaf) in all.iter().enumerate() {
            f.append(*leaf);
            assert_eq!(f.size(), i as u64 + 1);
            assert_eq!(f.hashes().len(), f.size().count_ones() as usize);
            assert_eq!(f.root(), root(&all[..=i]), "size {}", i + 1);
            let rebuilt = Frontier::from_parts(f.size(), f.hashes().to_vec()).unwrap();
            assert_eq!(rebuilt, f);
        }
        assert_eq!(Frontier::from_leaves(&all), f);
        assert!(Frontier::from_parts(3, vec![[0u8; 32]]).is_none());
    }
}
