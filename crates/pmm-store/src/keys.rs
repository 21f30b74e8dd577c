//! Redis key names, in one place so every daemon agrees on them.
//!
//! Every key is `<namespace><name>`; the namespace is empty in production and unique per test.
//! The names follow `pmm_core::keys` (`cb:<chain>:<pool>`, `cooldown:<chain>:<pool>`,
//! `notional:<scope>:<utc_day>` where a per-pool scope is `<chain>:<pool>`); `chain` is whatever
//! the caller identifies chains by, and pool addresses are lowercased so two spellings of one
//! address name one key.

use std::fmt::Display;

use chrono::NaiveDate;

/// Circuit breaker of one pool: `cb:<chain>:<pool>`, JSON [`crate::redis::BreakerState`].
pub fn breaker(namespace: &str, chain: impl Display, pool: &str) -> String {
    format!("{namespace}cb:{chain}:{}", pool.to_ascii_lowercase())
}

/// Cooldown of one pool: `cooldown:<chain>:<pool>`, the next allowed unix time in seconds.
pub fn cooldown(namespace: &str, chain: impl Display, pool: &str) -> String {
    format!("{namespace}cooldown:{chain}:{}", pool.to_ascii_lowercase())
}

/// Days since the Unix epoch of a UTC date (the window number of the daily notional key).
pub fn utc_day_number(day: NaiveDate) -> i64 {
    day.signed_duration_since(NaiveDate::default()).num_days()
}

/// Notional used in one daily window: `notional:<scope>:<utc_day>`, a decimal string of raw
/// units.
pub fn daily_cap(namespace: &str, scope: &str, day: NaiveDate) -> String {
    format!(
        "{namespace}notional:{}:{}",
        scope.to_ascii_lowercase(),
        utc_day_number(day)
    )
}

/// Version of the Redis key layout written by `pmm-state bootstrap`.
pub fn schema_version(namespace: &str) -> String {
    format!("{namespace}pmm:schema_version")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_documented_layout() {
        assert_eq!(breaker("", 1, "0xAbC"), "cb:1:0xabc");
        assert_eq!(breaker("", "devnet", "0xab"), "cb:devnet:0xab");
        assert_eq!(cooldown("t:", 31337, "0xab"), "t:cooldown:31337:0xab");
        let day = NaiveDate::from_ymd_opt(2023, 11, 14).unwrap_or_default();
        assert_eq!(utc_day_number(day), 1_700_000_000 / 86_400);
        assert_eq!(
            daily_cap("", "devnet:0xAB", day),
            "notional:devnet:0xab:19675"
        );
        assert_eq!(schema_version("ns:"), "ns:pmm:schema_version");
    }
}
