//! Synthetic face templates for the simulator and the scriptable device.
//!
//! A "person" is a deterministic unit vector of [`TEMPLATE_DIMS`] dimensions drawn from a
//! standard normal distribution (splitmix64 + Box-Muller). A live capture of the same person is
//! a small perturbation of it (cosine similarity about 0.95 to 0.99 with the original); two
//! different persons are nearly orthogonal (cosine about 0, standard deviation about 0.09).

/// The number of values in a face template.
pub const TEMPLATE_DIMS: usize = 128;

/// A face embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceTemplate(pub Vec<f32>);

impl FaceTemplate {
    /// The reference template of the synthetic person `seed` (a unit vector).
    pub fn of_person(seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed ^ 0x5045_5253_4f4e_0001);
        let v: Vec<f64> = (0..TEMPLATE_DIMS).map(|_| rng.gaussian()).collect();
        Self(normalise(&v))
    }

    /// A live capture of the same person: the template plus Gaussian noise whose strength
    /// (drawn from `noise_seed`) puts the cosine with `self` between about 0.95 and 0.99.
    pub fn live_capture(&self, noise_seed: u64) -> Self {
        let mut rng = SplitMix64::new(noise_seed ^ 0x4c49_5645_0000_0002);
        let norm = self
            .0
            .iter()
            .map(|x| f64::from(*x) * f64::from(*x))
            .sum::<f64>()
            .sqrt();
        let norm = if norm > 0.0 && norm.is_finite() {
            norm
        } else {
            1.0
        };
        // For a unit vector plus noise of per-dimension deviation s, the cosine is about
        // 1 / sqrt(1 + 128 s^2): s = 0.012 gives 0.991, s = 0.025 gives 0.962.
        let sigma = 0.012 + 0.013 * rng.uniform();
        let v: Vec<f64> = self
            .0
            .iter()
            .map(|x| f64::from(*x) / norm + sigma * rng.gaussian())
            .collect();
        Self(normalise(&v))
    }

    /// The values.
    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }

    /// The values, owned.
    pub fn into_vec(self) -> Vec<f32> {
        self.0
    }

    /// Cosine similarity with `other` (see [`cosine`]).
    pub fn cosine(&self, other: &FaceTemplate) -> f32 {
        cosine(&self.0, &other.0)
    }
}

impl From<Vec<f32>> for FaceTemplate {
    fn from(v: Vec<f32>) -> Self {
        Self(v)
    }
}

/// Cosine similarity of two templates, in [-1, 1]. Templates of different lengths, empty or
/// all-zero templates, and non-finite values give 0.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    let denom = na.sqrt() * nb.sqrt();
    let c = dot / denom;
    if denom > 0.0 && c.is_finite() {
        c.clamp(-1.0, 1.0) as f32
    } else {
        0.0
    }
}

fn normalise(v: &[f64]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let norm = if norm > 0.0 { norm } else { 1.0 };
    v.iter().map(|x| (x / norm) as f32).collect()
}

/// splitmix64 (Steele, Lea, Flood 2014): small, fast, and fully deterministic.
struct SplitMix64 {
    state: u64,
    spare: Option<f64>,
}

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        Self {
            state: seed,
            spare: None,
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in the open interval (0, 1).
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller; the second value of each pair is kept for the next call).
    fn gaussian(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let (u1, u2) = (self.uniform(), self.uniform());
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * u2;
        self.spare = Some(r * theta.sin());
        r * theta.cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persons_are_deterministic_unit_vectors() {
        let a = FaceTemplate::of_person(7);
        assert_eq!(a, FaceTemplate::of_person(7));
        assert_eq!(a.as_slice().len(), TEMPLATE_DIMS);
        let norm: f32 = a.as_slice().iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4);
        assert!(a.as_slice().iter().all(|x| x.is_finite()));
    }

    #[test]
    fn live_captures_match_their_person_and_not_others() {
        for person in 0..50u64 {
            let reference = FaceTemplate::of_person(person);
            for noise in 0..10u64 {
                let live = reference.live_capture(person * 1000 + noise);
                let c = live.cosine(&reference);
                assert!(
                    (0.94..=0.995).contains(&c),
                    "person {person} noise {noise}: {c}"
                );
                let other = FaceTemplate::of_person(person + 10_000);
                let d = live.cosine(&other);
                assert!(d.abs() < 0.45, "person {person} vs other: {d}");
            }
        }
    }

    #[test]
    fn cosine_edge_cases() {
        assert_eq!(cosine(&[], &[]), 0.0);
        assert_eq!(cosine(&[1.0, 0.0], &[1.0]), 0.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert_eq!(cosine(&[f32::NAN, 0.0], &[1.0, 0.0]), 0.0);
        assert!((cosine(&[1.0, 0.0], &[2.0, 0.0]) - 1.0).abs() < 1e-6);
        assert!((cosine(&[1.0, 0.0], &[-2.0, 0.0]) + 1.0).abs() < 1e-6);
    }
}
