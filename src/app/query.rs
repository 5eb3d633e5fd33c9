//! Query-string parsing for the heavy endpoint: Django's `request.GET.get()` semantics (the last
//! repeated value wins, `+` is a space, percent-escapes decode), with the strict integer grammar
//! of the API contract instead of the original's 500 on anything `int()` rejects.

use super::Limits;

/// The three work parameters, validated and within their caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeavyParams {
    pub prime_limit: i64,
    pub hash_rounds: i64,
    pub io_kb: i64,
    /// Whether the append is fsynced (`io_sync=fsync`, the original's behaviour) or left to the
    /// page cache (`io_sync=none`), to tell CPU-bound from storage-bound comparisons apart.
    pub io_sync: bool,
    /// Fault injection for robustness tests: panic inside the handler (`fault=panic`). Only
    /// parsed when the server runs with `--enable-fault-injection`.
    pub panic: bool,
    /// Fault injection: the worker sends this request on the shared queue in a frame of an
    /// unknown version (`fault=frame`), to prove an undecodable frame is answered, not lost.
    pub corrupt_frame: bool,
}

impl Default for HeavyParams {
    fn default() -> Self {
        HeavyParams {
            prime_limit: 500_000,
            hash_rounds: 1_000_000,
            io_kb: 128,
            io_sync: true,
            panic: false,
            corrupt_frame: false,
        }
    }
}

/// A parameter the client got wrong: which one, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    pub param: &'static str,
    pub message: String,
    /// The bound that was exceeded, when that is the problem.
    pub max: Option<i64>,
}

/// The most work a heavy request may ask for and still be answered on the event loop, as
/// health is: fewer than 100 trial-division candidates, 10 hash rounds and no I/O — about a
/// microsecond, less than handing it to a thread costs (two wake-ups and a descriptor hop).
pub const INLINE_MAX_PRIME_LIMIT: i64 = 100;
pub const INLINE_MAX_HASH_ROUNDS: i64 = 10;

impl HeavyParams {
    /// Whether the request's whole work is smaller than handing it to a handler thread, so
    /// the event loop answers it itself (never a fault-injection request: those test the
    /// thread path).
    pub fn runs_inline(&self) -> bool {
        self.prime_limit <= INLINE_MAX_PRIME_LIMIT
            && self.hash_rounds <= INLINE_MAX_HASH_ROUNDS
            && self.io_kb == 0
            && !self.panic
            && !self.corrupt_frame
    }

    /// Parses the raw query string (the part after `?`, without it).
    pub fn from_query(query: &str, limits: &Limits) -> Result<Self, ParamError> {
        let mut raw: [Option<String>; 3] = [None, None, None];
        let mut panic = false;
        let mut corrupt_frame = false;
        let mut io_sync = true;
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match key.as_ref() {
                "fault" if limits.fault_injection => {
                    panic = value == "panic";
                    corrupt_frame = value == "frame";
                    continue;
                }
                "io_sync" => {
                    io_sync = match value.as_ref() {
                        "fsync" => true,
                        "none" => false,
                        _ => {
                            return Err(ParamError {
                                param: "io_sync",
                                message: "io_sync must be fsync or none".into(),
                                max: None,
                            })
                        }
                    };
                    continue;
                }
                "prime_limit" => 0,
                "hash_rounds" => 1,
                "io_kb" => 2,
                _ => continue,
            };
            raw[slot] = Some(value.into_owned());
        }
        let defaults = HeavyParams::default();
        let [prime, hash, io] = raw;
        let prime_limit = parse_param("prime_limit", prime, defaults.prime_limit)?;
        let hash_rounds = parse_param("hash_rounds", hash, defaults.hash_rounds)?;
        let io_kb = parse_param("io_kb", io, defaults.io_kb)?;
        if io_kb < 0 {
            return Err(ParamError {
                param: "io_kb",
                message: "io_kb must not be negative".into(),
                max: None,
            });
        }
        check_cap("prime_limit", prime_limit, limits.max_prime_limit)?;
        check_cap("hash_rounds", hash_rounds, limits.max_hash_rounds)?;
        check_cap("io_kb", io_kb, limits.max_io_kb)?;
        Ok(HeavyParams {
            prime_limit,
            hash_rounds,
            io_kb,
            io_sync,
            panic,
            corrupt_frame,
        })
    }
}

fn parse_param(name: &'static str, raw: Option<String>, default: i64) -> Result<i64, ParamError> {
    let Some(raw) = raw else { return Ok(default) };
    match parse_integer(&raw) {
        Ok(value) => Ok(value),
        Err(IntError::Overflow { negative }) if !negative => Err(ParamError {
            param: name,
            message: format!("{name} is too large"),
            max: None,
        }),
        Err(_) => Err(ParamError {
            param: name,
            message: format!("{name} must be an integer"),
            max: None,
        }),
    }
}

fn check_cap(name: &'static str, value: i64, max: i64) -> Result<(), ParamError> {
    if value > max {
        return Err(ParamError {
            param: name,
            message: format!("{name} must be at most {max}"),
            max: Some(max),
        });
    }
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
pub enum IntError {
    NotAnInteger,
    Overflow { negative: bool },
}

/// The contract's integer: optional ASCII whitespace, an optional sign, ASCII digits, optional
/// ASCII whitespace. No underscores, no decimal point, no exponent, no Unicode digits.
pub fn parse_integer(text: &str) -> Result<i64, IntError> {
    let trimmed = text.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b');
    let (negative, digits) = match trimmed.as_bytes().first() {
        Some(b'-') => (true, &trimmed[1..]),
        Some(b'+') => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(IntError::NotAnInteger);
    }
    let mut value: i64 = 0;
    for b in digits.bytes() {
        let d = i64::from(b - b'0');
        value = value
            .checked_mul(10)
            .and_then(|v| {
                if negative {
                    v.checked_sub(d)
                } else {
                    v.checked_add(d)
                }
            })
            .ok_or(IntError::Overflow { negative })?;
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            fault_injection: true,
            ..Limits::default()
        }
    }

    fn parse(q: &str) -> Result<HeavyParams, ParamError> {
        HeavyParams::from_query(q, &limits())
    }

    #[test]
    fn defaults_apply_when_absent() {
        assert_eq!(parse("").unwrap(), HeavyParams::default());
        assert_eq!(parse("unrelated=1&x").unwrap(), HeavyParams::default());
    }

    #[test]
    fn values_parse_and_the_last_repeat_wins() {
        let p = parse("prime_limit=10&hash_rounds=3&io_kb=0&prime_limit=20").unwrap();
        assert_eq!(
            p,
            HeavyParams {
                prime_limit: 20,
                hash_rounds: 3,
                io_kb: 0,
                io_sync: true,
                panic: false,
                corrupt_frame: false
            }
        );
    }

    #[test]
    fn only_work_smaller_than_a_hand_off_runs_inline() {
        let cheapest = parse("prime_limit=2&hash_rounds=1&io_kb=0").unwrap();
        assert!(cheapest.runs_inline());
        assert!(parse("prime_limit=100&hash_rounds=10&io_kb=0")
            .unwrap()
            .runs_inline());
        for above in [
            "prime_limit=101&hash_rounds=1&io_kb=0",
            "prime_limit=2&hash_rounds=11&io_kb=0",
            "prime_limit=2&hash_rounds=1&io_kb=1",
            "",
        ] {
            assert!(!parse(above).unwrap().runs_inline(), "{above}");
        }
        let faulty = HeavyParams {
            panic: true,
            ..cheapest
        };
        assert!(!faulty.runs_inline());
        let corrupt = HeavyParams {
            corrupt_frame: true,
            ..cheapest
        };
        assert!(!corrupt.runs_inline());
    }

    #[test]
    fn io_sync_is_fsync_or_none() {
        assert!(parse("").unwrap().io_sync);
        assert!(parse("io_sync=fsync").unwrap().io_sync);
        assert!(!parse("io_sync=none").unwrap().io_sync);
        let err = parse("io_sync=maybe").unwrap_err();
        assert_eq!(err.param, "io_sync");
        assert_eq!(err.message, "io_sync must be fsync or none");
    }

    #[test]
    fn whitespace_signs_and_escapes_are_accepted() {
        assert_eq!(parse("prime_limit=+100").unwrap().prime_limit, 100); // '+' is a space
        assert_eq!(parse("prime_limit=%2B100").unwrap().prime_limit, 100);
        assert_eq!(parse("prime_limit=%20%2012%09").unwrap().prime_limit, 12);
        assert_eq!(parse("prime_limit=-5").unwrap().prime_limit, -5);
        assert_eq!(parse("hash_rounds=-1").unwrap().hash_rounds, -1);
        assert_eq!(parse("%70rime_limit=7").unwrap().prime_limit, 7);
    }

    #[test]
    fn non_integers_name_the_parameter() {
        for bad in [
            "",
            "abc",
            "1.5",
            "1e6",
            "1_000",
            "0x10",
            "--1",
            "%2B-1",
            "1 2",
            "%EF%BC%91",
            "-",
        ] {
            let err = parse(&format!("hash_rounds={bad}")).unwrap_err();
            assert_eq!(err.param, "hash_rounds", "{bad:?}");
            assert_eq!(err.message, "hash_rounds must be an integer", "{bad:?}");
        }
        let err = parse("io_kb").unwrap_err();
        assert_eq!(err.param, "io_kb");
    }

    #[test]
    fn overflow_and_caps_are_rejected() {
        let err = parse("prime_limit=99999999999999999999999").unwrap_err();
        assert_eq!(err.param, "prime_limit");
        let err = parse("prime_limit=-99999999999999999999999").unwrap_err();
        assert_eq!(err.message, "prime_limit must be an integer");
        let err = parse("hash_rounds=20000001").unwrap_err();
        assert_eq!(err.max, Some(20_000_000));
        assert_eq!(err.message, "hash_rounds must be at most 20000000");
        assert!(parse("hash_rounds=20000000").is_ok());
        let err = parse("io_kb=4097").unwrap_err();
        assert_eq!(err.param, "io_kb");
    }

    #[test]
    fn negative_io_is_rejected() {
        let err = parse("io_kb=-1").unwrap_err();
        assert_eq!(err.param, "io_kb");
        assert_eq!(err.message, "io_kb must not be negative");
    }

    #[test]
    fn integer_grammar_edges() {
        assert_eq!(parse_integer("9223372036854775807"), Ok(i64::MAX));
        assert_eq!(parse_integer("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(
            parse_integer("9223372036854775808"),
            Err(IntError::Overflow { negative: false })
        );
        assert_eq!(parse_integer("0007"), Ok(7));
        assert_eq!(parse_integer("\x0b7\x0c"), Ok(7));
    }
}
