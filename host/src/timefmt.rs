//! How times cross the API, the store and webhook records: RFC 3339 in UTC to
//! whole seconds (`2026-12-04T18:51:30Z`). Records hold Unix seconds (`i64`)
//! and say so with `#[serde(with = "crate::timefmt::secs")]`; reading also
//! takes the Unix seconds that stores written before this format hold.

use serde::{Deserialize, Deserializer, Serializer};

/// `2026-12-04T18:51:30Z`. A time out of chrono's range (never made by Kiln)
/// shows as its Unix seconds.
pub fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map_or_else(|| unix.to_string(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// Unix seconds from RFC 3339 (any offset, fractions dropped).
pub fn parse(text: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp())
        .map_err(|e| format!("`{text}` is not an RFC 3339 time such as 2026-12-04T18:51:30Z: {e}"))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Either {
    Unix(i64),
    Text(String),
}

impl Either {
    fn into_unix<E: serde::de::Error>(self) -> Result<i64, E> {
        match self {
            Either::Unix(t) => Ok(t),
            Either::Text(s) => parse(&s).map_err(E::custom),
        }
    }
}

/// `#[serde(with = "crate::timefmt::secs")]` on an `i64` of Unix seconds.
pub mod secs {
    use super::*;

    pub fn serialize<S: Serializer>(unix: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rfc3339(*unix))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        Either::deserialize(d)?.into_unix()
    }
}

/// `#[serde(with = "crate::timefmt::secs_opt", default)]` on an `Option<i64>` of Unix seconds.
pub mod secs_opt {
    use super::*;

    pub fn serialize<S: Serializer>(unix: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match unix {
            Some(t) => s.serialize_str(&rfc3339(*t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        Option::<Either>::deserialize(d)?.map(Either::into_unix).transpose()
    }
}

/// `#[serde(with = "crate::timefmt::millis")]` on an `i64` of Unix milliseconds
/// (shown to the second, as every other time).
pub mod millis {
    use super::*;

    pub fn serialize<S: Serializer>(unix_ms: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rfc3339(unix_ms.div_euclid(1000)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        match Either::deserialize(d)? {
            Either::Unix(ms) => Ok(ms),
            Either::Text(s) => parse(&s).map(|t| t * 1000).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Record {
        #[serde(with = "super::secs")]
        at: i64,
        #[serde(with = "super::secs_opt", default)]
        done: Option<i64>,
    }

    #[test]
    fn times_are_rfc3339_and_old_unix_seconds_still_read() {
        let r = Record { at: 1_764_874_290, done: None };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(text, r#"{"at":"2025-12-04T18:51:30Z","done":null}"#);
        assert_eq!(serde_json::from_str::<Record>(&text).unwrap(), r);
        let old: Record = serde_json::from_str(r#"{"at":1764874290,"done":1764874291}"#).unwrap();
        assert_eq!(old, Record { at: 1_764_874_290, done: Some(1_764_874_291) });
        let missing: Record = serde_json::from_str(r#"{"at":"2025-12-04T19:51:30+01:00"}"#).unwrap();
        assert_eq!(missing, r);
        let err = serde_json::from_str::<Record>(r#"{"at":"yesterday"}"#).unwrap_err().to_string();
        assert!(err.contains("not an RFC 3339 time"), "{err}");
    }
}
