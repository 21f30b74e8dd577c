//! Field deserializers whose error messages say what the value must be; combined with
//! `serde_path_to_error` they produce `pools[1].limits.cooldown_s: must be >= 0 (got -5)`.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};

/// Largest basis-point value: 100%.
pub(crate) const MAX_BPS: u32 = 10_000;

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
