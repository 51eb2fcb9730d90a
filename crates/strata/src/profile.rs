//! The three profiles: what changes between a laptop, staging and production.

use std::fmt;
use std::str::FromStr;

/// A deployment profile: the defaults every setting takes unless the config file, the
/// environment or code says otherwise.
///
/// | setting | development | staging | production |
/// |---|---|---|---|
/// | log level (`log.level`) | `debug` (`h2`, `hyper`, `tonic`, `rustls` at `info`) | `info` | `warn` |
/// | log format (`log.format`) | `console` (coloured on a terminal) | `json` | `json` |
/// | file and line in lines (`log.file_line`) | on | off | off |
/// | stack frames under ERROR console lines (`log.backtraces`) | on | off | off |
/// | redaction (`redaction.enabled`) | off | on | on |
/// | error capture (`capture.enabled`) | on (local store) | on | on |
/// | OTLP export (`otlp.enabled`) | on (local file unless an endpoint is set) | on | on |
/// | trace sampling (`otlp.sample_ratio`) | every trace | every trace | 10 % of new traces (parent-based) |
/// | metrics (`metrics.enabled`) | on | on | on |
///
/// Capture, OTLP and metrics need their cargo features (`capture`, `otlp`, `metrics`); what a
/// build does not have is off whatever the profile says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Profile {
    /// A developer's machine: everything visible, nothing leaves the machine.
    #[default]
    Development,
    /// A pre-production deployment: production's shape, more detail.
    Staging,
    /// Production: quiet logs, no secrets, every error tracked, sampled traces.
    Production,
}

/// The names [`Profile::from_name`] accepts, for error messages.
pub const PROFILE_NAMES: &str = "development (or dev, develop, local), staging (or stage, stg, preprod) or production (or prod, prd, live)";

impl Profile {
    /// Every profile.
    pub const ALL: [Profile; 3] = [Profile::Development, Profile::Staging, Profile::Production];

    /// The canonical name: `development`, `staging`, `production`.
    pub const fn name(self) -> &'static str {
        match self {
            Profile::Development => "development",
            Profile::Staging => "staging",
            Profile::Production => "production",
        }
    }

    /// The profile named `name`, ignoring case and surrounding space, common aliases accepted
    /// (see [`PROFILE_NAMES`]).
    pub fn from_name(name: &str) -> Option<Profile> {
        match name.trim().to_ascii_lowercase().as_str() {
            "development" | "dev" | "develop" | "local" => Some(Profile::Development),
            "staging" | "stage" | "stg" | "preprod" | "pre-production" => Some(Profile::Staging),
            "production" | "prod" | "prd" | "live" => Some(Profile::Production),
            _ => None,
        }
    }

    pub(crate) const fn log_level(self) -> &'static str {
        match self {
            // DEBUG for the application; the network stack's DEBUG (HTTP/2 frames, connection
            // pool churn) would bury it, most of all once OTLP export is on.
            Profile::Development => {
                "debug,h2=info,hyper=info,hyper_util=info,tonic=info,rustls=info"
            }
            Profile::Staging => "info",
            Profile::Production => "warn",
        }
    }

    pub(crate) const fn is_development(self) -> bool {
        matches!(self, Profile::Development)
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name given to [`Profile::from_str`] is not a profile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown profile {0:?}: expected {PROFILE_NAMES}")]
pub struct UnknownProfile(pub String);

impl FromStr for Profile {
    type Err = UnknownProfile;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Profile::from_name(s).ok_or_else(|| UnknownProfile(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases() {
        for p in Profile::ALL {
            assert_eq!(Profile::from_name(p.name()), Some(p));
            assert_eq!(p.name().parse::<Profile>(), Ok(p));
        }
        assert_eq!(Profile::from_name(" PROD "), Some(Profile::Production));
        assert_eq!(Profile::from_name("Dev"), Some(Profile::Development));
        assert_eq!(Profile::from_name("stage"), Some(Profile::Staging));
        assert_eq!(Profile::from_name("qa"), None);
        let err = "prodution".parse::<Profile>().unwrap_err();
        assert!(err.to_string().contains("prodution") && err.to_string().contains("production"));
    }
}
