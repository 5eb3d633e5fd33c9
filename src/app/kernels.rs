//! The two CPU kernels of the heavy endpoint, exactly as the original computes them.
//!
//! Both take a [`Deadline`] and check it every few thousand steps, so a request that outlives
//! `--timeout` stops burning CPU instead of running on after its client got a 503.

use sha2::{Digest, Sha256};
use std::time::Instant;

/// The seed of the SHA-256 chain: the original hashes `b"django-load-test"`.
pub const HASH_SEED: &[u8] = b"django-load-test";

/// How many loop steps pass between two deadline checks. `Instant::now()` is a vDSO call of a
/// few tens of nanoseconds; every 1024 steps it costs far below 1% of the work.
const CHECK_EVERY: u32 = 1024;

/// The moment a request's work must stop. `Deadline::none()` never expires.
#[derive(Clone, Copy, Debug)]
pub struct Deadline(Option<Instant>);

/// The work was abandoned because its deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request's deadline passed")]
pub struct TimedOut;

impl Deadline {
    pub fn none() -> Self {
        Deadline(None)
    }

    pub fn at(instant: Instant) -> Self {
        Deadline(Some(instant))
    }

    pub fn check(&self) -> Result<(), TimedOut> {
        match self.0 {
            Some(at) if Instant::now() >= at => Err(TimedOut),
            _ => Ok(()),
        }
    }
}

/// Counts the primes `p` with `2 <= p < limit` by naive trial division, the deliberately slow
/// algorithm of the original (a sieve would be a different workload).
pub fn count_primes_below(limit: i64, deadline: Deadline) -> Result<u64, TimedOut> {
    if limit <= 2 {
        return Ok(0);
    }
    let mut count = 0u64;
    let mut until_check = CHECK_EVERY;
    for n in 2..limit as u64 {
        if is_prime_by_trial_division(n) {
            count += 1;
        }
        until_check -= 1;
        if until_check == 0 {
            deadline.check()?;
            until_check = CHECK_EVERY;
        }
    }
    Ok(count)
}

fn is_prime_by_trial_division(n: u64) -> bool {
    // 32-bit division is markedly faster than 64-bit and covers every limit the caps admit.
    if let Ok(n) = u32::try_from(n) {
        let mut i = 2u32;
        while (i as u64) * (i as u64) <= n as u64 {
            if n % i == 0 {
                return false;
            }
            i += 1;
        }
        return true;
    }
    let mut i = 2u64;
    while i.saturating_mul(i) <= n {
        if n.is_multiple_of(i) {
            return false;
        }
        i += 1;
    }
    true
}

/// Applies SHA-256 `rounds` times to [`HASH_SEED`], each round hashing the previous raw digest.
/// Returns the final value: the seed itself when `rounds <= 0`, else a 32-byte digest.
pub fn sha256_chain(rounds: i64, deadline: Deadline) -> Result<Vec<u8>, TimedOut> {
    if rounds <= 0 {
        return Ok(HASH_SEED.to_vec());
    }
    let mut value: [u8; 32] = Sha256::digest(HASH_SEED).into();
    let mut until_check = CHECK_EVERY;
    for _ in 1..rounds {
        value = Sha256::digest(value).into();
        until_check -= 1;
        if until_check == 0 {
            deadline.check()?;
            until_check = CHECK_EVERY;
        }
    }
    Ok(value.to_vec())
}

/// Lower-case hex, as Python's `bytes.hex()`.
pub fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// `../shared/spec/test-vectors.json`, carried into the project.
    const VECTORS: &str = include_str!("../../tests/data/test-vectors.json");

    fn vectors() -> serde_json::Value {
        serde_json::from_str(VECTORS).unwrap()
    }

    #[test]
    fn prime_counts_match_the_vectors() {
        let v = vectors();
        let table = v["primes_below"].as_object().unwrap();
        assert!(table.len() >= 10);
        for (limit, expected) in table {
            let limit: i64 = limit.parse().unwrap();
            let got = count_primes_below(limit, Deadline::none()).unwrap();
            assert_eq!(got, expected.as_u64().unwrap(), "primes below {limit}");
        }
    }

    #[test]
    fn hash_chain_matches_the_vectors() {
        let v = vectors();
        let table = v["sha256_chain"].as_object().unwrap();
        assert!(table.len() >= 5);
        for (rounds, expected) in table {
            let rounds: i64 = rounds.parse().unwrap();
            let got = sha256_chain(rounds, Deadline::none()).unwrap();
            assert_eq!(to_hex(&got), expected.as_str().unwrap(), "{rounds} rounds");
        }
    }

    #[test]
    fn negative_rounds_leave_the_seed() {
        assert_eq!(sha256_chain(-3, Deadline::none()).unwrap(), HASH_SEED);
    }

    #[test]
    fn an_expired_deadline_stops_both_kernels() {
        let past = Deadline::at(Instant::now() - Duration::from_millis(1));
        assert_eq!(count_primes_below(10_000_000, past), Err(TimedOut));
        assert_eq!(sha256_chain(10_000_000, past), Err(TimedOut));
        // Small work finishes before the first check and is not affected.
        assert_eq!(count_primes_below(100, past), Ok(25));
    }

    #[test]
    fn trial_division_agrees_beyond_32_bits() {
        assert!(is_prime_by_trial_division(4_294_967_311)); // the first prime above 2^32
        assert!(!is_prime_by_trial_division(4_294_967_297)); // 641 * 6700417
    }
}
