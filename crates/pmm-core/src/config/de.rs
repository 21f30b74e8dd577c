//! Field deserializers whose error messages say what the value must be; combined with
//! `serde_path_to_error` they produce `pools[1].limits.cooldown_s: must be >= 0 (got -5)`.

use std::fmt;
use std::str::FromStr;

use alloy_primitives::Address;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};

/// Largest basis-point value: 100%.
pub(crate) const MAX_BPS: u32 = 10_000;

/// Parses a `0x` + 40 hex digit address. Mixed case must be a valid EIP-55 checksum, so a
/// mistyped character in a checksummed address is caught instead of naming another account.
pub(crate) fn parse_address(s: &str) -> Result<Address, String> {
    let hex = s
        .strip_prefix("0x")
        .filter(|h| h.len() == 40 && h.chars().all(|c| c.is_ascii_hexdigit()))
        .ok_or_else(|| {
            format!(
                "not a 20-byte hex address (expected 0x followed by 40 hex digits, got {:?})",
                s.chars().take(50).collect::<String>()
            )
        })?;
    let address = Address::from_str(s).map_err(|e| format!("not a 20-byte hex address: {e}"))?;
    let mixed_case =
        hex.chars().any(|c| c.is_ascii_lowercase()) && hex.chars().any(|c| c.is_ascii_uppercase());
    if mixed_case {
        let checksummed = address.to_checksum(None);
        if checksummed != s {
            return Err(format!(
                "EIP-55 checksum mismatch for {s} (expected {checksummed}, or write it all lowercase)"
            ));
        }
    }
    Ok(address)
}

/// Deserializes an address string with [`parse_address`].
pub(crate) fn address<'de, D: Deserializer<'de>>(d: D) -> Result<Address, D::Error> {
    let s = String::deserialize(d)?;
    parse_address(&s).map_err(de::Error::custom)
}

/// Deserializes an optional address string with [`parse_address`].
pub(crate) fn opt_address<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Address>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|s| parse_address(&s).map_err(de::Error::custom))
        .transpose()
}

/// Deserializes a JSON integer >= 0, naming the rule on failure.
pub(crate) fn non_negative_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct NonNegative;

    impl Visitor<'_> for NonNegative {
        type Value = u64;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an integer >= 0")
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::custom(format!("must be >= 0 (got {v})")))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
            Err(E::custom(format!("must be a whole number >= 0 (got {v})")))
        }
    }

    d.deserialize_u64(NonNegative)
}

/// Deserializes an optional JSON integer >= 0.
pub(crate) fn opt_non_negative_u64<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "non_negative_u64")] u64);

    Ok(Option::<Wrapped>::deserialize(d)?.map(|w| w.0))
}

/// Deserializes basis points: an integer in 0..=10000.
pub(crate) fn bps<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = non_negative_u64(d)?;
    u32::try_from(v)
        .ok()
        .filter(|b| *b <= MAX_BPS)
        .ok_or_else(|| de::Error::custom(format!("must be <= {MAX_BPS} bps (got {v})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_lowercase_uppercase_and_checksummed() {
        let lower = "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed";
        let check = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        assert_eq!(parse_address(lower).unwrap(), parse_address(check).unwrap());
        assert!(parse_address(&lower.to_uppercase().replace("0X", "0x")).is_ok());
        let bad_checksum = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD";
        assert!(parse_address(bad_checksum).unwrap_err().contains("checksum"));
        for bad in ["", "0x", "5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", "0x1234", "0xzz"] {
            assert!(parse_address(bad).unwrap_err().contains("20-byte"), "{bad}");
        }
    }
}
