//! A tiny deterministic PRNG (splitmix64) and id derivation.
//!
//! The simulator never stores per-day data: every number is re-derived from a hash of
//! (seed, domain, indices), so a 100 000-agent org costs only its roster in memory and two
//! simulators started with the same seed answer byte-identical analytics.

use uuid::Uuid;

/// Hash domains, so that e.g. user 3 and skill 3 never share a random stream.
pub(crate) mod domain {
    pub(crate) const USER: u64 = 1;
    pub(crate) const SKILL: u64 = 2;
    pub(crate) const DIVISION: u64 = 3;
    pub(crate) const QUEUE: u64 = 4;
    pub(crate) const GROUP: u64 = 5;
    pub(crate) const WORKTYPE: u64 = 6;
    pub(crate) const STATUS: u64 = 7;
    pub(crate) const WORKITEM: u64 = 8;
    pub(crate) const ROSTER: u64 = 9;
    pub(crate) const AGENT_TRAITS: u64 = 10;
    pub(crate) const PAIR_TRAITS: u64 = 11;
    pub(crate) const CONV_DAY: u64 = 12;
    pub(crate) const EVAL_DAY: u64 = 13;
    pub(crate) const SURVEY_DAY: u64 = 14;
    pub(crate) const DAY_SKILL: u64 = 15;
    pub(crate) const TWIN_LAYOUT: u64 = 16;
    pub(crate) const TWIN_TRUTH: u64 = 17;
    pub(crate) const TWIN_RATING: u64 = 18;
    pub(crate) const TWIN_ARRIVALS: u64 = 19;
    pub(crate) const TWIN_CASE: u64 = 20;
    pub(crate) const TWIN_PATIENCE: u64 = 21;
    pub(crate) const TWIN_VOLUME: u64 = 22;
    pub(crate) const SKILL_GROUP: u64 = 23;
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The splitmix64 finaliser: a good 64-bit mixer.
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hashes a tuple of words into one well-mixed word.
pub(crate) fn mix(parts: &[u64]) -> u64 {
    parts.iter().fold(0x5EED_CAFE_F00D_D00D, |acc, p| {
        splitmix64(acc ^ splitmix64(*p))
    })
}

/// A splitmix64 stream.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A stream keyed by a tuple (see [`mix`]).
    pub(crate) fn keyed(parts: &[u64]) -> Self {
        Rng(mix(parts))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        splitmix64(self.0)
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub(crate) fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform integer in [0, n); 0 when n is 0.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Approximately standard normal (Irwin–Hall with 4 terms, rescaled to unit variance):
    /// cheap, bounded to about ±3.5, good enough for synthetic abilities.
    pub(crate) fn normal(&mut self) -> f64 {
        let s: f64 = (0..4).map(|_| self.unit()).sum();
        (s - 2.0) * 3f64.sqrt()
    }

    /// Standard normal (Box–Muller, one of the pair): unbounded tails, which log-normal
    /// handle times need.
    pub(crate) fn gaussian(&mut self) -> f64 {
        // 1 - unit() lies in (0, 1]: the logarithm is finite.
        let r = (-2.0 * (1.0 - self.unit()).ln()).sqrt();
        r * (std::f64::consts::TAU * self.unit()).cos()
    }

    /// Exponential with the given mean.
    pub(crate) fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    /// Binomial(trials, p) by direct simulation; trials are small here.
    pub(crate) fn binomial(&mut self, trials: u32, p: f64) -> u32 {
        (0..trials).filter(|_| self.chance(p)).count() as u32
    }
}

/// A v4-formatted UUID derived from the seed, so ids are stable across runs.
pub(crate) fn uuid_for(seed: u64, dom: u64, index: u64) -> Uuid {
    let a = mix(&[seed, dom, index]);
    let b = mix(&[a, dom, index, 0xA5A5]);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_le_bytes());
    bytes[8..].copy_from_slice(&b.to_le_bytes());
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_deterministic_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| Rng::keyed(&[1, 2]).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(
            Rng::keyed(&[1, 2]).next_u64(),
            Rng::keyed(&[2, 1]).next_u64()
        );
        assert_eq!(uuid_for(42, 1, 7), uuid_for(42, 1, 7));
        assert_ne!(uuid_for(42, 1, 7), uuid_for(43, 1, 7));
    }

    #[test]
    fn normal_is_roughly_standard() {
        let mut r = Rng::keyed(&[9]);
        let xs: Vec<f64> = (0..20_000).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.05 && (var - 1.0).abs() < 0.1, "{mean} {var}");
    }

    #[test]
    fn gaussian_and_exponential_have_their_moments() {
        let mut r = Rng::keyed(&[11]);
        let xs: Vec<f64> = (0..40_000).map(|_| r.gaussian()).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
        assert!(
            xs.iter().any(|x| x.abs() > 3.6),
            "the tails reach beyond ±3.6"
        );
        let e = (0..40_000).map(|_| r.exponential(3.0)).sum::<f64>() / 40_000.0;
        assert!((e - 3.0).abs() < 0.1, "{e}");
    }
}
