//! Settings from flags, the environment and an optional TOML file, in that order of
//! precedence. A wrong value stops start-up with a message naming the setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const DEFAULT_DATABASE_URL: &str = "sqlite:textback.db";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The TOML file's keys: the same settings, lowest precedence.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub database_url: Option<String>,
    pub listen: Option<String>,
    pub public_url: Option<String>,
    pub twilio_account_sid: Option<String>,
    pub twilio_auth_token: Option<String>,
    pub twilio_api_base: Option<String>,
    pub twilio_lookup_base: Option<String>,
    pub twilio_messaging_base: Option<String>,
    pub twilio_webhook_shared_key: Option<String>,
    pub telnyx_api_key: Option<String>,
    pub telnyx_public_key: Option<String>,
    pub telnyx_api_base: Option<String>,
    pub workers: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("the config file {path} is not valid: {error}")]
    Parse { path: PathBuf, error: String },
    #[error("{setting} = {value:?} is not valid: {why}")]
    Invalid {
        setting: &'static str,
        value: String,
        why: String,
    },
    #[error(
        "{present} is set but {missing} is not: set both to use Twilio, or neither to use the sandbox"
    )]
    Incomplete {
        present: &'static str,
        missing: &'static str,
    },
    #[error(
        "{present} is set but {missing} is not: Telnyx needs both (the API key sends, the public key checks its webhooks)"
    )]
    IncompleteTelnyx {
        present: &'static str,
        missing: &'static str,
    },
}

pub fn load_file(path: Option<&Path>) -> Result<FileConfig, ConfigError> {
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_owned(),
        error,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        error: e.to_string(),
    })
}

pub fn database_url(flag: Option<String>, file: &FileConfig) -> Result<String, ConfigError> {
    let url = flag
        .or_else(|| file.database_url.clone())
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
    if url.starts_with("sqlite:")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://")
    {
        Ok(url)
    } else {
        Err(ConfigError::Invalid {
            setting: "DATABASE_URL",
            value: url,
            why: "use sqlite:PATH (for example sqlite:textback.db) or postgres://USER@HOST/DB"
                .into(),
        })
    }
}

pub fn listen(flag: Option<String>, file: &FileConfig) -> Result<SocketAddr, ConfigError> {
    let raw = flag
        .or_else(|| file.listen.clone())
        .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    raw.parse().map_err(|_| ConfigError::Invalid {
        setting: "TEXTBACK_LISTEN",
        value: raw,
        why: "expected an address and port, like 127.0.0.1:8080 or 0.0.0.0:8080".into(),
    })
}

/// The public base URL; defaults to the listen address, which suits local testing only.
pub fn public_url(
    flag: Option<String>,
    file: &FileConfig,
    listen: SocketAddr,
) -> Result<String, ConfigError> {
    let raw = flag
        .or_else(|| file.public_url.clone())
        .unwrap_or_else(|| format!("http://{listen}"));
    check_base_url("TEXTBACK_PUBLIC_URL", &raw)?;
    Ok(raw.trim_end_matches('/').to_owned())
}

pub fn check_base_url(setting: &'static str, raw: &str) -> Result<(), ConfigError> {
    let invalid = |why: &str| ConfigError::Invalid {
        setting,
        value: raw.to_owned(),
        why: why.to_owned(),
    };
    let rest = raw
        .strip_prefix("https://")
        .or_else(|| raw.strip_prefix("http://"))
        .ok_or_else(|| invalid("it must start with https:// (or http:// for local testing)"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(invalid("it has no host name"));
    }
    if raw.contains('?') || raw.contains('#') {
        return Err(invalid("a base URL cannot carry a query or fragment"));
    }
    Ok(())
}

pub struct TwilioSettings {
    pub account_sid: String,
    pub auth_token: String,
}

pub fn twilio(
    sid: Option<String>,
    token: Option<String>,
    file: &FileConfig,
) -> Result<Option<TwilioSettings>, ConfigError> {
    let sid = sid
        .or_else(|| file.twilio_account_sid.clone())
        .filter(|s| !s.is_empty());
    let token = token
        .or_else(|| file.twilio_auth_token.clone())
        .filter(|s| !s.is_empty());
    match (sid, token) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(ConfigError::Incomplete {
            present: "TWILIO_ACCOUNT_SID",
            missing: "TWILIO_AUTH_TOKEN",
        }),
        (None, Some(_)) => Err(ConfigError::Incomplete {
            present: "TWILIO_AUTH_TOKEN",
            missing: "TWILIO_ACCOUNT_SID",
        }),
        (Some(sid), Some(token)) => {
            if !(sid.starts_with("AC")
                && sid.len() == 34
                && sid[2..].chars().all(|c| c.is_ascii_hexdigit()))
            {
                return Err(ConfigError::Invalid {
                    setting: "TWILIO_ACCOUNT_SID",
                    value: sid,
                    why: "an Account SID is AC followed by 32 hexadecimal characters".into(),
                });
            }
            if token.len() < 16 || token.chars().any(char::is_whitespace) {
                // The token's value never goes into an error message.
                return Err(ConfigError::Invalid {
                    setting: "TWILIO_AUTH_TOKEN",
                    value: "(hidden)".into(),
                    why: "an auth token is 32 characters without spaces".into(),
                });
            }
            Ok(Some(TwilioSettings {
                account_sid: sid,
                auth_token: token,
            }))
        }
    }
}

/// Telnyx's settings: the API key and the webhook public key, both or neither, and the API
/// base URL (tests point it at a local stand-in).
pub fn telnyx(
    api_key: Option<String>,
    public_key: Option<String>,
    api_base: Option<String>,
    file: &FileConfig,
) -> Result<Option<textback_server::TelnyxSettings>, ConfigError> {
    let api_key = api_key
        .or_else(|| file.telnyx_api_key.clone())
        .filter(|s| !s.trim().is_empty());
    let public_key = public_key
        .or_else(|| file.telnyx_public_key.clone())
        .filter(|s| !s.trim().is_empty());
    let (api_key, public_key) = match (api_key, public_key) {
        (None, None) => return Ok(None),
        (Some(_), None) => {
            return Err(ConfigError::IncompleteTelnyx {
                present: "TELNYX_API_KEY",
                missing: "TELNYX_PUBLIC_KEY",
            });
        }
        (None, Some(_)) => {
            return Err(ConfigError::IncompleteTelnyx {
                present: "TELNYX_PUBLIC_KEY",
                missing: "TELNYX_API_KEY",
            });
        }
        (Some(a), Some(p)) => (a, p),
    };
    textback_carriers::telnyx::TelnyxPublicKey::parse(&public_key).map_err(|e| {
        ConfigError::Invalid {
            setting: "TELNYX_PUBLIC_KEY",
            value: "(hidden)".into(),
            why: e.to_string(),
        }
    })?;
    let api_base = api_base
        .or_else(|| file.telnyx_api_base.clone())
        .unwrap_or_else(|| textback_carriers::telnyx::client::DEFAULT_BASE.to_owned());
    check_base_url("TEXTBACK_TELNYX_API_BASE", &api_base)?;
    Ok(Some(textback_server::TelnyxSettings {
        api_key: api_key.trim().to_owned(),
        public_key: public_key.trim().to_owned(),
        api_base: api_base.trim_end_matches('/').to_owned(),
    }))
}

pub fn twilio_api_base(flag: Option<String>, file: &FileConfig) -> Result<String, ConfigError> {
    let raw = flag
        .or_else(|| file.twilio_api_base.clone())
        .unwrap_or_else(|| textback_carriers::twilio::client::DEFAULT_API_BASE.to_owned());
    check_base_url("TEXTBACK_TWILIO_API_BASE", &raw)?;
    Ok(raw.trim_end_matches('/').to_owned())
}

pub fn twilio_lookup_base(flag: Option<String>, file: &FileConfig) -> Result<String, ConfigError> {
    let raw = flag
        .or_else(|| file.twilio_lookup_base.clone())
        .unwrap_or_else(|| textback_carriers::twilio::client::DEFAULT_LOOKUP_BASE.to_owned());
    check_base_url("TEXTBACK_TWILIO_LOOKUP_BASE", &raw)?;
    Ok(raw.trim_end_matches('/').to_owned())
}

pub fn twilio_messaging_base(
    flag: Option<String>,
    file: &FileConfig,
) -> Result<String, ConfigError> {
    let raw = flag
        .or_else(|| file.twilio_messaging_base.clone())
        .unwrap_or_else(|| textback_carriers::twilio::client::DEFAULT_MESSAGING_BASE.to_owned());
    check_base_url("TEXTBACK_TWILIO_MESSAGING_BASE", &raw)?;
    Ok(raw.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let f = FileConfig::default();
        assert_eq!(database_url(None, &f).unwrap(), DEFAULT_DATABASE_URL);
        let l = listen(None, &f).unwrap();
        assert_eq!(l.to_string(), DEFAULT_LISTEN);
        assert_eq!(public_url(None, &f, l).unwrap(), "http://127.0.0.1:8080");
        assert!(twilio(None, None, &f).unwrap().is_none());
    }

    #[test]
    fn flags_beat_the_file() {
        let f = FileConfig {
            listen: Some("127.0.0.1:9000".into()),
            ..FileConfig::default()
        };
        assert_eq!(listen(None, &f).unwrap().port(), 9000);
        assert_eq!(
            listen(Some("127.0.0.1:9100".into()), &f).unwrap().port(),
            9100
        );
    }

    #[test]
    fn errors_name_the_setting() {
        let f = FileConfig::default();
        let e = listen(Some("localhost".into()), &f)
            .unwrap_err()
            .to_string();
        assert!(e.contains("TEXTBACK_LISTEN"), "{e}");
        let e = public_url(
            Some("tb.example.com".into()),
            &f,
            "127.0.0.1:1".parse().unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("TEXTBACK_PUBLIC_URL"), "{e}");
        let e = database_url(Some("mysql://x".into()), &f)
            .unwrap_err()
            .to_string();
        assert!(e.contains("DATABASE_URL"), "{e}");
        let e = twilio(Some("AC123".into()), None, &f)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("TWILIO_AUTH_TOKEN"), "{e}");
        let e = twilio(
            Some("nope".into()),
            Some("0123456789abcdef0123456789abcdef".into()),
            &f,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("TWILIO_ACCOUNT_SID"), "{e}");
        let secret = "secret-token\n";
        let e = twilio(
            Some(format!("AC{}", "a".repeat(32))),
            Some(secret.into()),
            &f,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains("TWILIO_AUTH_TOKEN") && !e.contains(secret),
            "{e}"
        );
    }
}
