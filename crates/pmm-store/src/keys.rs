//! Redis key names, in one place so every daemon agrees on them.
//!
//! Every key is `<namespace><name>`; the namespace is empty in production and unique per test.

use chrono::NaiveDate;

/// Circuit breaker of one pool: `cb:<chain>:<pool>`, JSON [`crate::redis::BreakerState`].
pub fn breaker(namespace: &str, chain_id: u64, pool: &str) -> String {
    format!("{namespace}cb:{chain_id}:{}", pool.to_ascii_lowercase())
}

/// Cooldown of one pool: `cooldown:<chain>:<pool>`, the next allowed unix time in seconds.
pub fn cooldown(namespace: &str, chain_id: u64, pool: &str) -> String {
    format!(
        "{namespace}cooldown:{chain_id}:{}",
        pool.to_ascii_lowercase()
    )
}

/// Notional used in one daily window: `cap:<scope>:<YYYY-MM-DD>`, an integer.
pub fn daily_cap(namespace: &str, scope: &str, day: NaiveDate) -> String {
    format!("{namespace}cap:{scope}:{}", day.format("%Y-%m-%d"))
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
        assert_eq!(cooldown("t:", 31337, "0xab"), "t:cooldown:31337:0xab");
        let day = NaiveDate::from_ymd_opt(2026, 1, 2).unwrap_or_default();
        assert_eq!(daily_cap("", "global", day), "cap:global:2026-01-02");
        assert_eq!(schema_version("ns:"), "ns:pmm:schema_version");
    }
}
