//! Configuration from the environment, read once at cold start. A missing or malformed
//! setting stops the start with a message that names it.

use crate::handler::Serves;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;

use crate::inventory::LockTtl;
use crate::outbound::outbox::RelayPolicy;
use crate::rds_iam::require_verified_tls;

pub const DEFAULT_EVENT_BUS_NAME: &str = "SkyLedger-Default-Bus";

pub struct Config {
    /// Over TLS with the server's certificate verified (`verify-full`), unless
    /// `DATABASE_URL` names an `sslmode` of its own.
    pub database: PgConnectOptions,
    /// `DB_IAM_AUTH=true`: sign an RDS IAM token for `DB_USER` instead of a password, over
    /// verified TLS. Needs the `DB_*` parts, not `DATABASE_URL`.
    pub iam_auth: bool,
    pub event_bus_name: String,
    /// `EVENT_BUS_ENDPOINT`: an EventBridge endpoint other than AWS's, for `sam local` and
    /// emulators (the template declares it empty, so `sam local`'s env-vars file may set
    /// it); unset or empty, the SDK's own (which also honours AWS_ENDPOINT_URL_EVENTBRIDGE).
    pub event_bus_endpoint: Option<String>,
    pub lock_ttl: LockTtl,
    pub relay: RelayPolicy,
    /// `AWS_LAMBDA_MAX_CONCURRENCY`: invocations the instance runs at once (Lambda Managed
    /// Instances set it), and so the database connections it keeps. 1 when unset.
    pub max_concurrency: usize,
    /// `RETENTION_DAYS_AFTER_DEPARTURE`: a departed flight is deleted, with its seats,
    /// holds, orders and outbox rows, this many days after departure.
    pub flight_retention_days: u32,
    /// `FUNCTION_MODE`: `events` (the default: everything) or `availability` (the seat
    /// map over HTTP only; the template sets it on the availability function).
    pub serves: Serves,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is not set ({hint})")]
    Missing {
        name: &'static str,
        hint: &'static str,
    },
    #[error("{name} is invalid: {problem}")]
    Invalid { name: &'static str, problem: String },
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let defaults = RelayPolicy::default();
        let iam_auth = env.flag("DB_IAM_AUTH")?;
        if iam_auth && env.get("DATABASE_URL").is_some() {
            return Err(ConfigError::Invalid {
                name: "DB_IAM_AUTH",
                problem: "IAM auth signs for DB_HOST/DB_PORT/DB_USER; unset DATABASE_URL".into(),
            });
        }
        if iam_auth && env.get("DB_PASSWORD").is_some() {
            return Err(ConfigError::Invalid {
                name: "DB_IAM_AUTH",
                problem: "a password and IAM auth exclude each other; unset DB_PASSWORD".into(),
            });
        }
        Ok(Self {
            database: database(&env)?,
            iam_auth,
            event_bus_name: env.bus_name()?,
            event_bus_endpoint: env.get("EVENT_BUS_ENDPOINT"),
            lock_ttl: LockTtl::from_seconds(env.number("LOCK_TTL_SECONDS", 900, 1..=86_400)?),
            relay: RelayPolicy {
                grace: Duration::from_secs(env.number(
                    "OUTBOX_GRACE_SECONDS",
                    defaults.grace.as_secs(),
                    1..=3_600,
                )?),
                retention_days: env.number("OUTBOX_RETENTION_DAYS", 7, 1..=365)?,
                park_after: env.duration("OUTBOX_PARK_AFTER", defaults.park_after)?,
                backoff: Duration::from_secs(env.number(
                    "OUTBOX_BACKOFF_SECONDS",
                    defaults.backoff.as_secs(),
                    0..=3_600,
                )?),
                ..defaults
            },
            // As lambda_runtime reads it: 0 counts as unset.
            max_concurrency: env
                .number("AWS_LAMBDA_MAX_CONCURRENCY", 1, 0..=1_024)?
                .max(1),
            flight_retention_days: env.number("RETENTION_DAYS_AFTER_DEPARTURE", 30, 1..=3_650)?,
            serves: match env.get("FUNCTION_MODE").as_deref().map(str::trim) {
                None | Some("events") => Serves::Everything,
                Some("availability") => Serves::SeatMapOnly,
                Some(_) => {
                    return Err(ConfigError::Invalid {
                        name: "FUNCTION_MODE",
                        problem: "expected events or availability".into(),
                    });
                }
            },
        })
    }
}

/// `DATABASE_URL` for local use; otherwise the parts, as the template sets them.
///
/// A password travels over TLS with the certificate checked, as an IAM token does:
/// sqlx's own default (`prefer`) checks nothing and falls back to plaintext. Only an
/// `sslmode` written in `DATABASE_URL` (`?sslmode=disable` for a local server) says
/// otherwise; `PGSSLMODE` is not read.
fn database(env: &Env<'_>) -> Result<PgConnectOptions, ConfigError> {
    if let Some(url) = env.get("DATABASE_URL") {
        // The URL may hold a password: the error names the variable, never its value.
        let invalid = || ConfigError::Invalid {
            name: "DATABASE_URL",
            problem: "expected postgres://user@host:port/database".into(),
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(invalid());
        }
        let options = PgConnectOptions::from_str(&url).map_err(|_| invalid())?;
        return Ok(if names_ssl_mode(&url) {
            options
        } else {
            require_verified_tls(options)
        });
    }
    let hint = "set DATABASE_URL, or DB_HOST, DB_NAME and DB_USER";
    let mut options = PgConnectOptions::new_without_pgpass()
        .host(&env.required("DB_HOST", hint)?)
        .port(env.number("DB_PORT", 5432, 1..=65_535)?)
        .database(&env.required("DB_NAME", hint)?)
        .username(&env.required("DB_USER", hint)?);
    if let Some(password) = env.get("DB_PASSWORD") {
        options = options.password(&password);
    }
    Ok(require_verified_tls(options))
}

/// Whether the URL's query names an `sslmode` (or `ssl-mode`, as sqlx also reads it).
fn names_ssl_mode(url: &str) -> bool {
    let Some((_, query)) = url.split_once('?') else {
        return false;
    };
    query.split('&').any(|pair| {
        let key = pair.split_once('=').map_or(pair, |(key, _)| key);
        let key = percent_encoding::percent_decode_str(key).decode_utf8_lossy();
        key == "sslmode" || key == "ssl-mode"
    })
}

struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    /// A set but empty variable counts as not set.
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|value| !value.trim().is_empty())
    }

    fn required(&self, name: &'static str, hint: &'static str) -> Result<String, ConfigError> {
        self.get(name).ok_or(ConfigError::Missing { name, hint })
    }

    fn number<T>(
        &self,
        name: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        let problem = || ConfigError::Invalid {
            name,
            problem: format!(
                "expected a whole number from {} to {}, got {raw:?}",
                range.start(),
                range.end()
            ),
        };
        let value: T = raw.trim().parse().map_err(|_| problem())?;
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(problem())
        }
    }

    /// A duration: a whole number with a unit, `s`, `m`, `h` or `d` (`24h`, `90m`), from
    /// one second to 30 days.
    fn duration(&self, name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        let text = raw.trim();
        let unit = match text.chars().last() {
            Some('s') => 1,
            Some('m') => 60,
            Some('h') => 3_600,
            Some('d') => 86_400,
            _ => 0,
        };
        let seconds = text[..text.len().saturating_sub(1)]
            .parse::<u64>()
            .ok()
            .and_then(|count| count.checked_mul(unit))
            .filter(|seconds| (1..=30 * 86_400).contains(seconds));
        seconds.map(Duration::from_secs).ok_or(ConfigError::Invalid {
            name,
            problem: format!(
                "expected a duration from 1s to 30d, a whole number and s, m, h or d (24h), got {raw:?}"
            ),
        })
    }

    /// `true` or `false` (any case); not set is false.
    fn flag(&self, name: &'static str) -> Result<bool, ConfigError> {
        match self
            .get(name)
            .map(|value| value.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(_) => Err(ConfigError::Invalid {
                name,
                problem: "expected true or false".into(),
            }),
        }
    }

    fn bus_name(&self) -> Result<String, ConfigError> {
        let name = self
            .get("EVENT_BUS_NAME")
            .unwrap_or_else(|| DEFAULT_EVENT_BUS_NAME.to_owned());
        let valid = name.len() <= 256
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/:".contains(c));
        if valid {
            Ok(name)
        } else {
            Err(ConfigError::Invalid {
                name: "EVENT_BUS_NAME",
                problem: "expected a bus name or ARN (letters, digits, . _ - / :)".into(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use sqlx::postgres::PgSslMode;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn a_database_url_alone_is_enough_and_the_rest_defaults() {
        let config = config(&[("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")]);
        let Ok(config) = config else {
            panic!("expected a config");
        };
        assert_eq!(config.event_bus_name, "SkyLedger-Default-Bus");
        assert_eq!(config.lock_ttl, LockTtl::from_seconds(900));
        assert_eq!(config.relay.retention_days, 7);
        assert_eq!(config.relay.park_after, Duration::from_secs(24 * 3_600));
        assert_eq!(config.event_bus_endpoint, None);
        assert_eq!(config.relay.backoff, Duration::from_secs(30));
        assert_eq!(config.max_concurrency, 1);
        assert_eq!(config.flight_retention_days, 30);
        assert_eq!(config.database.get_port(), 5432);
    }

    #[test]
    fn the_database_parts_are_used_without_a_url() {
        let config = config(&[
            ("DB_HOST", "proxy.example"),
            ("DB_PORT", "6432"),
            ("DB_NAME", "skyledger"),
            ("DB_USER", "inventory_app"),
        ]);
        let Ok(config) = config else {
            panic!("expected a config");
        };
        assert_eq!(config.database.get_host(), "proxy.example");
        assert_eq!(config.database.get_port(), 6432);
        assert_eq!(config.database.get_database(), Some("skyledger"));
    }

    #[test]
    fn iam_auth_is_off_unless_asked_and_excludes_passwords() {
        let parts = [("DB_HOST", "proxy"), ("DB_NAME", "db"), ("DB_USER", "app")];
        assert!(config(&parts).is_ok_and(|c| !c.iam_auth));
        let with = |extra: (&'static str, &'static str)| {
            let mut vars = parts.to_vec();
            vars.push(("DB_IAM_AUTH", "TRUE"));
            vars.push(extra);
            config(&vars)
        };
        assert!(with(("DB_PORT", "5432")).is_ok_and(|c| c.iam_auth));
        assert!(with(("DB_PASSWORD", "x")).is_err());
        assert!(with(("DATABASE_URL", "postgres://h/db")).is_err());
        let error = config(&[("DATABASE_URL", "postgres://h/db"), ("DB_IAM_AUTH", "yes")]).err();
        assert!(error.is_some_and(|e| e.to_string().starts_with("DB_IAM_AUTH is invalid")));
    }

    #[test]
    fn a_password_connection_verifies_the_certificate_unless_the_url_says_otherwise() {
        let mode = |vars: &[(&str, &str)]| config(vars).map(|c| c.database.get_ssl_mode());
        let url = |url: &str| mode(&[("DATABASE_URL", url)]);
        let parts = [("DB_HOST", "db"), ("DB_NAME", "db"), ("DB_USER", "app")];
        let mut with_password = parts.to_vec();
        with_password.push(("DB_PASSWORD", "pw"));

        assert!(matches!(
            url("postgres://app:pw@db/db"),
            Ok(PgSslMode::VerifyFull)
        ));
        let bundle = "postgres://app@db/db?sslrootcert=/etc/rds/global-bundle.pem";
        assert!(matches!(url(bundle), Ok(PgSslMode::VerifyFull)));
        assert!(matches!(mode(&parts), Ok(PgSslMode::VerifyFull)));
        assert!(matches!(mode(&with_password), Ok(PgSslMode::VerifyFull)));

        let local = "postgres://postgres@127.0.0.1:5432/db";
        let named = |query: &str| url(&format!("{local}?{query}"));
        assert!(matches!(named("sslmode=disable"), Ok(PgSslMode::Disable)));
        assert!(matches!(named("sslmode=prefer"), Ok(PgSslMode::Prefer)));
        assert!(matches!(
            named("sslmode=verify-ca"),
            Ok(PgSslMode::VerifyCa)
        ));
        let spelled_as_sqlx_also_reads_it = "application_name=x&ssl-mode=require";
        assert!(matches!(
            named(spelled_as_sqlx_also_reads_it),
            Ok(PgSslMode::Require)
        ));
    }

    #[test]
    fn a_missing_setting_is_named() {
        let error = config(&[("DB_HOST", "proxy"), ("DB_USER", "app")]).err();
        assert_eq!(
            error.map(|e| e.to_string()),
            Some("DB_NAME is not set (set DATABASE_URL, or DB_HOST, DB_NAME and DB_USER)".into())
        );
    }

    #[test]
    fn the_park_after_duration_takes_a_unit() {
        let url = ("DATABASE_URL", "postgres://localhost/test");
        let park_after = |value| {
            config(&[url, ("OUTBOX_PARK_AFTER", value)])
                .ok()
                .map(|config| config.relay.park_after)
        };

        assert_eq!(park_after("90m"), Some(Duration::from_secs(5_400)));
        assert_eq!(park_after("2d"), Some(Duration::from_secs(172_800)));
        assert_eq!(park_after("45s"), Some(Duration::from_secs(45)));
    }

    #[test]
    fn a_malformed_setting_is_named_with_what_was_expected() {
        let url = ("DATABASE_URL", "postgres://localhost/test");
        for (name, value) in [
            ("LOCK_TTL_SECONDS", "fifteen minutes"),
            ("LOCK_TTL_SECONDS", "0"),
            ("OUTBOX_RETENTION_DAYS", "-1"),
            ("OUTBOX_PARK_AFTER", "0h"),
            ("OUTBOX_PARK_AFTER", "24"),
            ("OUTBOX_PARK_AFTER", "31d"),
            ("OUTBOX_BACKOFF_SECONDS", "a minute"),
            ("AWS_LAMBDA_MAX_CONCURRENCY", "four"),
            ("RETENTION_DAYS_AFTER_DEPARTURE", "0"),
            ("EVENT_BUS_NAME", "bus with spaces"),
        ] {
            let error = config(&[url, (name, value)]).err().map(|e| e.to_string());
            assert!(
                error
                    .as_deref()
                    .is_some_and(|e| e.starts_with(&format!("{name} is invalid"))),
                "{name}={value:?} gave {error:?}"
            );
        }
    }

    #[test]
    fn a_bad_database_url_does_not_leak_its_password() {
        for url in [
            "mysql://user:s3cret@host/db",
            "postgres://user:s3cret@host:port/db",
        ] {
            let error = config(&[("DATABASE_URL", url)])
                .err()
                .map(|e| e.to_string());
            assert!(
                error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("DATABASE_URL is invalid"))
            );
            assert!(!error.unwrap_or_default().contains("s3cret"));
        }
    }
}
