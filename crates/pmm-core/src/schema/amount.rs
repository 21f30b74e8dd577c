//! Exact unsigned quantities that travel as decimal strings.
//!
//! JSON numbers lose precision past 2^53 in most consumers (JavaScript, many LLM tool
//! runtimes), so every value that feeds math crosses the wire as a string of digits.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use alloy_primitives::U256;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An exact unsigned 256-bit quantity: raw token units, shares, or an 18-decimal fixed-point
/// value. Serializes as a decimal string (`"1000000000000000000"`), never as a JSON number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(pub U256);

impl Amount {
    /// Zero.
    pub const ZERO: Self = Self(U256::ZERO);

    /// The wrapped integer.
    pub fn get(self) -> U256 {
        self.0
    }

    /// Whether the amount is zero.
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl From<U256> for Amount {
    fn from(value: U256) -> Self {
        Self(value)
    }
}

impl From<u128> for Amount {
    fn from(value: u128) -> Self {
        Self(U256::from(value))
    }
}

impl From<Amount> for U256 {
    fn from(value: Amount) -> Self {
        value.0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Why a string is not a valid [`Amount`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// The string was empty.
    #[error("empty amount: expected a decimal string of digits 0-9")]
    Empty,
    /// The string started with a minus sign.
    #[error("negative amount {0:?}: amounts are unsigned")]
    Negative(String),
    /// A character other than an ASCII digit (signs, spaces, dots, exponents, hex prefixes).
    #[error("invalid character {ch:?} at byte {pos} of amount: expected only digits 0-9")]
    InvalidDigit {
        /// The offending character.
        ch: char,
        /// Its byte offset in the input.
        pos: usize,
    },
    /// The value does not fit in 256 bits.
    #[error("amount exceeds 2^256-1")]
    Overflow,
}

impl FromStr for Amount {
    type Err = AmountError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(AmountError::Empty);
        }
        if s.starts_with('-') {
            return Err(AmountError::Negative(s.chars().take(80).collect()));
        }
        if let Some((pos, ch)) = s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
            return Err(AmountError::InvalidDigit { ch, pos });
        }
        // Every character is a digit, so the only remaining failure is overflow.
        U256::from_str_radix(s, 10)
            .map(Self)
            .map_err(|_| AmountError::Overflow)
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AmountVisitor;

        impl Visitor<'_> for AmountVisitor {
            type Value = Amount;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal string of digits 0-9 (an exact unsigned integer)")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Amount, E> {
                v.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_str(AmountVisitor)
    }
}

impl JsonSchema for Amount {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("Amount")
    }

    fn schema_id() -> Cow<'static, str> {
        Cow::Borrowed(concat!(module_path!(), "::Amount"))
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "Exact unsigned integer (at most 2^256-1) as a decimal string: raw token units, shares, or 18-decimal fixed point."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_json_as_a_string() {
        let a = Amount(U256::from(10u64).pow(U256::from(30u64)));
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, "\"1000000000000000000000000000000\"");
        assert_eq!(serde_json::from_str::<Amount>(&json).unwrap(), a);
    }

    #[test]
    fn accepts_zero_leading_zeros_and_max() {
        assert_eq!("0".parse::<Amount>().unwrap(), Amount::ZERO);
        assert_eq!("007".parse::<Amount>().unwrap(), Amount::from(7u128));
        let max = U256::MAX.to_string();
        assert_eq!(max.parse::<Amount>().unwrap(), Amount(U256::MAX));
    }

    #[test]
    fn rejects_negatives_non_digits_and_overflow() {
        assert_eq!("".parse::<Amount>(), Err(AmountError::Empty));
        assert!(matches!(
            "-1".parse::<Amount>(),
            Err(AmountError::Negative(_))
        ));
        assert_eq!(
            "+1".parse::<Amount>(),
            Err(AmountError::InvalidDigit { ch: '+', pos: 0 })
        );
        assert_eq!(
            "1.5".parse::<Amount>(),
            Err(AmountError::InvalidDigit { ch: '.', pos: 1 })
        );
        assert_eq!(
            "1e18".parse::<Amount>(),
            Err(AmountError::InvalidDigit { ch: 'e', pos: 1 })
        );
        assert_eq!(
            "0x10".parse::<Amount>(),
            Err(AmountError::InvalidDigit { ch: 'x', pos: 1 })
        );
        assert_eq!(
            " 1".parse::<Amount>(),
            Err(AmountError::InvalidDigit { ch: ' ', pos: 0 })
        );
        // 2^256 exactly: one past the maximum.
        let too_big =
            "115792089237316195423570985008687907853269984665640564039457584007913129639936";
        assert_eq!(too_big.parse::<Amount>(), Err(AmountError::Overflow));
    }

    #[test]
    fn json_numbers_are_rejected_with_a_clear_message() {
        let err = serde_json::from_str::<Amount>("5").unwrap_err().to_string();
        assert!(err.contains("decimal string"), "{err}");
        let err = serde_json::from_str::<Amount>("\"-5\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("negative"), "{err}");
    }

    #[test]
    fn schema_is_a_digit_string() {
        let schema = serde_json::to_value(schemars::schema_for!(Amount)).unwrap();
        assert_eq!(schema["type"], "string");
        assert_eq!(schema["pattern"], "^[0-9]+$");
    }
}
