//! Secrets in the configuration (bearer tokens; later Alertmanager and webhook
//! credentials): deserialized like a string, never printed. Their `Serialize`
//! and `Debug` both write [`REDACTED`], so `check-config`, a logged
//! configuration or a panic message cannot show one.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

/// What a secret prints as.
pub const REDACTED: &str = "<redacted>";

/// A configured secret. Only [`Secret::expose`] gives its text.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// The secret's text: for the one place that uses it, never for output.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(text: &str) -> Secret {
        Secret::new(text)
    }
}

impl From<String> for Secret {
    fn from(text: String) -> Secret {
        Secret(text)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialize_and_debug_redact_and_deserialize_reads_the_text() {
        let s: Secret = serde_yaml::from_str("hunter2").expect("parse");
        assert_eq!(s.expose(), "hunter2");
        let yaml = serde_yaml::to_string(&s).expect("serialize");
        assert!(
            !yaml.contains("hunter2") && yaml.contains(REDACTED),
            "{yaml}"
        );
        let debug = format!("{:?}", Some(&s));
        assert!(
            !debug.contains("hunter2") && debug.contains(REDACTED),
            "{debug}"
        );
    }
}
