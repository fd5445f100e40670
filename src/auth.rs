//! Bearer-token authentication, shared by the receivers and the admin
//! listener: the token is read once at start (from the configuration or a
//! file), an empty one is refused (it would turn authentication off), and a
//! presented token is compared in constant time, length included: both sides
//! are hashed with SHA-256 first and the digests compared with `subtle`.

use std::path::Path;

use subtle::ConstantTimeEq;

use crate::secret::{Secret, REDACTED};

/// The token clients must present, kept only as its digest.
#[derive(Clone)]
pub struct BearerToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    out
}

impl BearerToken {
    /// A token from its text; `None` when it is empty or only whitespace.
    pub fn new(token: &str) -> Option<BearerToken> {
        let token = token.trim();
        (!token.is_empty()).then(|| BearerToken {
            digest: sha256(token.as_bytes()),
        })
    }

    /// Reads the token given inline or in a file (exactly one of them). `key`
    /// is the configuration key (e.g. `receivers.auth`) every error message
    /// starts with.
    pub fn load(
        inline: Option<&Secret>,
        file: Option<&Path>,
        key: &str,
    ) -> Result<BearerToken, String> {
        let text = match (inline, file) {
            (Some(t), None) => t.expose().to_owned(),
            (None, Some(path)) => read_file(path, key)?,
            _ => {
                return Err(format!(
                    "{key}: set exactly one of bearer_token and bearer_token_file"
                ))
            }
        };
        if text.trim() == REDACTED {
            return Err(format!(
                "{key}: the token is {REDACTED:?}, check-config's placeholder: set the real token"
            ));
        }
        BearerToken::new(&text).ok_or_else(|| match file {
            Some(path) => format!(
                "{key}.bearer_token_file: {} is empty or only whitespace; an empty token would let every request in (remove {key} to turn authentication off)",
                path.display()
            ),
            None => format!(
                "{key}.bearer_token: empty or only whitespace; an empty token would let every request in (remove {key} to turn authentication off)"
            ),
        })
    }

    /// Whether an `Authorization` header value carries this token
    /// (`Bearer <token>`, the scheme in any case).
    pub fn admits(&self, authorization: Option<&[u8]>) -> bool {
        let presented = authorization
            .filter(|h| h.len() > 7 && h[..7].eq_ignore_ascii_case(b"bearer "))
            .map(|h| h[7..].trim_ascii())
            .unwrap_or_default();
        // Hashing first makes the comparison independent of the length too.
        let presented = sha256(presented);
        bool::from(presented.ct_eq(&self.digest))
    }
}

fn read_file(path: &Path, key: &str) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map_err(|e| format!("{key}.bearer_token_file: reading {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(token: Option<&str>, file: Option<&Path>, key: &str) -> Result<BearerToken, String> {
        BearerToken::load(token.map(Secret::from).as_ref(), file, key)
    }

    #[test]
    fn the_token_is_admitted_and_nothing_else() {
        let t = load(Some("s3cret"), None, "receivers.auth").expect("token");
        assert!(t.admits(Some(b"Bearer s3cret")));
        assert!(t.admits(Some(b"bearer s3cret")));
        assert!(t.admits(Some(b"BEARER s3cret")));
        for bad in [
            &b"Bearer s3cre"[..],
            b"Bearer s3cret2",
            b"Bearer ",
            b"Bearer",
            b"",
            b"Basic s3cret",
            b"s3cret",
        ] {
            assert!(!t.admits(Some(bad)), "{}", String::from_utf8_lossy(bad));
        }
        assert!(!t.admits(None));
    }

    #[test]
    fn empty_and_whitespace_tokens_are_refused_by_key() {
        for token in ["", "   ", "\n\t"] {
            let err = load(Some(token), None, "admin.auth").expect_err("empty");
            assert!(err.starts_with("admin.auth.bearer_token: empty"), "{err}");
        }
        let path = std::env::temp_dir().join(format!("leakwatch-token-{}", std::process::id()));
        std::fs::write(&path, " \n\n").expect("write");
        let err = load(None, Some(&path), "receivers.auth").expect_err("empty file");
        assert!(
            err.starts_with("receivers.auth.bearer_token_file:") && err.contains("empty"),
            "{err}"
        );
        std::fs::write(&path, "from-file\n").expect("write");
        let t = load(None, Some(&path), "receivers.auth").expect("token from the file, trimmed");
        assert!(t.admits(Some(b"Bearer from-file")));
        let _ = std::fs::remove_file(&path);
        let err = load(None, Some(&path), "receivers.auth").expect_err("missing file");
        assert!(
            err.starts_with("receivers.auth.bearer_token_file: reading"),
            "{err}"
        );
        let err = load(None, None, "receivers.auth").expect_err("none");
        assert!(err.contains("exactly one"), "{err}");
        let err = load(Some(REDACTED), None, "receivers.auth").expect_err("placeholder");
        assert!(err.contains("placeholder"), "{err}");
    }
}
