//! A listening address that can be turned off: `"127.0.0.1:8600"` or `"off"`, in config
//! files, `MUSTER_*` variables and flags alike. For `dns_addr`; `None` is off.
//!
//! Use it on an `Option<SocketAddr>` field with
//! `#[serde(with = "crate::agent::settings::addr_or_off")]`.

use std::net::SocketAddr;

use serde::{Deserialize, Deserializer, Serializer};

/// The word that turns the listener off.
pub const OFF: &str = "off";

/// Parses `"ip:port"` (`"[v6]:port"`) or `"off"` (`None`). The error says what was
/// expected.
pub fn parse_addr_or_off(text: &str) -> Result<Option<SocketAddr>, String> {
    if text == OFF {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|e| format!("{text:?}: {e}; expected ip:port or \"{OFF}\""))
}

/// Serde: writes the address, or `"off"`.
pub fn serialize<S: Serializer>(
    addr: &Option<SocketAddr>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match addr {
        Some(addr) => serializer.collect_str(addr),
        None => serializer.serialize_str(OFF),
    }
}

/// Serde: reads an address, or `"off"`.
pub fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_addr_or_off(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_off_parse_and_anything_else_is_refused() {
        assert_eq!(parse_addr_or_off("off"), Ok(None));
        assert_eq!(
            parse_addr_or_off("127.0.0.1:8600"),
            Ok(Some("127.0.0.1:8600".parse().unwrap()))
        );
        assert_eq!(
            parse_addr_or_off("[::1]:53"),
            Ok(Some("[::1]:53".parse().unwrap()))
        );
        for bad in ["", "OFF", "no", "127.0.0.1", "localhost:8600"] {
            let err = parse_addr_or_off(bad).unwrap_err();
            assert!(err.contains("expected ip:port or \"off\""), "{bad}: {err}");
        }
    }
}
