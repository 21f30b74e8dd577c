//! EVM addresses in JSON: written EIP-55 checksummed, read strictly (a mixed-case address
//! must carry a valid checksum, so a mistyped character is caught instead of naming another
//! account).

use std::str::FromStr;

use alloy_primitives::Address;
use serde::{Deserialize, Deserializer, Serializer, de};

/// Parses a `0x` + 40 hex digit address. Mixed case must be a valid EIP-55 checksum, so a
/// mistyped character in a checksummed address is caught instead of naming another account.
pub fn parse_address(s: &str) -> Result<Address, String> {
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

/// Serializes an address EIP-55 checksummed (`#[serde(with = "crate::schema::addr")]`).
pub fn serialize<S: Serializer>(address: &Address, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&address.to_checksum(None))
}

/// Deserializes an address with [`parse_address`].
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Address, D::Error> {
    let s = String::deserialize(deserializer)?;
    parse_address(&s).map_err(de::Error::custom)
}

/// Serializes an optional address EIP-55 checksummed.
pub fn serialize_opt<S: Serializer>(
    address: &Option<Address>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match address {
        Some(a) => serialize(a, serializer),
        None => serializer.serialize_none(),
    }
}

/// Deserializes an optional address with [`parse_address`].
pub fn deserialize_opt<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Address>, D::Error> {
    Option::<String>::deserialize(deserializer)?
        .map(|s| parse_address(&s).map_err(de::Error::custom))
        .transpose()
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
        assert!(
            parse_address(bad_checksum)
                .unwrap_err()
                .contains("checksum")
        );
        for bad in [
            "",
            "0x",
            "5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
            "0x1234",
            "0xzz",
        ] {
            assert!(parse_address(bad).unwrap_err().contains("20-byte"), "{bad}");
        }
    }

    #[test]
    fn serializes_checksummed() {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct W(#[serde(with = "super")] Address);
        let a = parse_address("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed").unwrap();
        assert_eq!(
            serde_json::to_string(&W(a)).unwrap(),
            "\"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed\""
        );
    }
}
