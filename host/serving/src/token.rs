//! [`AccessToken`]: the secret a server's clients present, kept in a private file.

use std::fmt;
use std::io::{self, Write};
use std::path::Path;

/// A server's access token: a random 256-bit hex string, compared in constant time and
/// never printed (`Debug` shows `AccessToken(..)`).
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    /// Reads the token at `path`, or creates it (mode 0600, missing parent directories
    /// 0700). Returns the token and whether it was created now.
    pub fn load_or_create(path: &Path) -> io::Result<(AccessToken, bool)> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let token = text.trim();
                if !is_one_word(token) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "the token file {} is empty or not one printable word; delete it to \
                             get a new token",
                            path.display()
                        ),
                    ));
                }
                warn_if_readable_by_others(path);
                Ok((AccessToken(token.to_string()), false))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    create_private_dir(dir)?;
                }
                let token = hex::encode(rand::random::<[u8; 32]>());
                let mut file = open_new_private(path)?;
                file.write_all(token.as_bytes())?;
                file.write_all(b"\n")?;
                file.sync_all()?;
                Ok((AccessToken(token), true))
            }
            Err(e) => Err(e),
        }
    }

    /// Reads a token someone else made (a client's token file); it must exist.
    pub fn read(path: &Path) -> io::Result<AccessToken> {
        let text = std::fs::read_to_string(path)?;
        let token = AccessToken::from_secret(text.trim()).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?;
        warn_if_readable_by_others(path);
        Ok(token)
    }

    /// A token given as text (from a file or the environment): one printable word, at
    /// least 16 characters (a guessable token is refused rather than served).
    pub fn from_secret(secret: &str) -> Result<AccessToken, WeakToken> {
        if secret.len() < MIN_TOKEN_LEN || !is_one_word(secret) {
            return Err(WeakToken);
        }
        Ok(AccessToken(secret.to_string()))
    }

    /// Whether `presented` is this token. Compares without an early exit, so timing does
    /// not reveal how much of a guess matched.
    pub fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), presented.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// The secret itself, for the process's own use (tests, a client it starts).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

fn is_one_word(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic())
}

/// The shortest client token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// A token that is not one printable word of at least [`MIN_TOKEN_LEN`] characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a token must be one printable word of at least {MIN_TOKEN_LEN} characters")]
pub struct WeakToken;

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(..)")
    }
}

#[cfg(unix)]
fn open_new_private(path: &Path) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn open_new_private(path: &Path) -> io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

/// Creates `dir` and its missing parents with mode 0700 (existing ones are left as they
/// are).
#[cfg(unix)]
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            mode = format_args!("{:o}", meta.permissions().mode() & 0o777),
            "the access token file is readable by other users; chmod 600 it"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("server.token");
        let (token, created) = AccessToken::load_or_create(&path).unwrap();
        assert!(created);
        assert_eq!(token.expose().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);
        }
        let (again, created) = AccessToken::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(again, token);
        assert!(!format!("{again:?}").contains(again.expose()));
    }

    #[test]
    fn a_damaged_token_file_is_an_error_not_a_new_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        std::fs::write(&path, "two words\n").unwrap();
        let e = AccessToken::load_or_create(&path).unwrap_err();
        assert!(e.to_string().contains("delete it"), "{e}");
    }

    #[test]
    fn comparison() {
        let token = AccessToken("abc".into());
        assert!(token.matches("abc"));
        assert!(!token.matches("abd"));
        assert!(!token.matches("ab"));
        assert!(!token.matches("abcd"));
        assert_eq!(AccessToken::from_secret("short"), Err(WeakToken));
        assert_eq!(
            AccessToken::from_secret("two words, long enough"),
            Err(WeakToken)
        );
        assert!(AccessToken::from_secret("0123456789abcdef").is_ok());
    }
}
