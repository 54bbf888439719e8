//! Reading configuration from the environment: typed structs via `envy`,
//! and an error that names the variable at fault, so a bad value stops
//! start-up with one line an operator can act on.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::{Error, Result};

/// Reads the `CHAT_*` variables into `T`. `T` must give every field a
/// default (`#[serde(default)]`), which is also what lets us name the
/// culprit of a failure: envy names the variable only for plain numbers and
/// booleans (and without its prefix), so each variable is tried on its own.
pub fn from_env<T: DeserializeOwned>() -> Result<T> {
    from_vars(std::env::vars())
}

/// [`from_env`] over an explicit set of variables (for tests).
pub fn from_vars<T: DeserializeOwned>(
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<T> {
    const PREFIX: &str = "CHAT_";
    let ours: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(name, _)| name.starts_with(PREFIX))
        .collect();
    let env = envy::prefixed(PREFIX);
    env.from_iter::<_, T>(ours.clone()).map_err(|err| {
        let message = err.to_string();
        let culprit = ours
            .iter()
            .find(|var| env.from_iter::<_, T>([(*var).clone()]).is_err());
        match culprit {
            Some((name, value)) => Error::Config(format!("{name}={value:?}: {message}")),
            None => Error::Config(format!("configuration: {message}")),
        }
    })
}

/// `DATABASE_URL`, or the SQLite file in the data dir when unset.
pub fn database_url(data_dir: &Path) -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("chat.db").display()))
}

/// `REDIS_URL`, if set and not empty.
pub fn redis_url() -> Option<String> {
    std::env::var("REDIS_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[derive(Debug, Deserialize)]
    #[serde(default)]
    struct Sample {
        addr: SocketAddr,
        port: u16,
        #[serde(with = "humantime")]
        ttl: std::time::Duration,
    }

    impl Default for Sample {
        fn default() -> Self {
            Self {
                addr: "127.0.0.1:1".parse().unwrap(),
                port: 1,
                ttl: std::time::Duration::from_secs(1),
            }
        }
    }

    mod humantime {
        use serde::{Deserialize, Deserializer};
        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<std::time::Duration, D::Error> {
            let s = String::deserialize(d)?;
            s.parse::<u64>()
                .map(std::time::Duration::from_secs)
                .map_err(serde::de::Error::custom)
        }
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn values_are_read_and_defaults_fill_the_rest() {
        let cfg: Sample = from_vars(vars(&[("CHAT_PORT", "9"), ("OTHER", "x")])).unwrap();
        assert_eq!(cfg.port, 9);
        assert_eq!(cfg.addr, "127.0.0.1:1".parse().unwrap());
    }

    #[test]
    fn a_bad_number_names_its_variable() {
        let err = from_vars::<Sample>(vars(&[("CHAT_PORT", "nine")])).unwrap_err();
        assert!(err.to_string().contains("CHAT_PORT"), "{err}");
    }

    #[test]
    fn a_bad_structured_value_names_its_variable() {
        let err = from_vars::<Sample>(vars(&[("CHAT_PORT", "9"), ("CHAT_ADDR", "not-an-address")]))
            .unwrap_err();
        assert!(err.to_string().starts_with("CHAT_ADDR="), "{err}");
    }
}
