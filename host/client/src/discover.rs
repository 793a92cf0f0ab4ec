//! Finding the local host: its URL and the access token it wrote.
//!
//! `yoi-host serve` writes its token to `<data dir>/host.token` on first start, where the
//! data dir is `$XDG_DATA_HOME/yoi`, else `$HOME/.local/share/yoi` (empty variables count
//! as unset). This module applies the same rule (without linking the host).

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::error::ClientError;
use crate::host::HostClient;

/// The token file's name in the host's data dir.
pub const TOKEN_FILE: &str = "host.token";

/// Where the local host is and how to authenticate to it.
#[derive(Clone, PartialEq, Eq)]
pub struct LocalHost {
    /// `$YOI_URL`, else [`HostClient::DEFAULT_URL`].
    pub url: String,
    /// `$YOI_TOKEN`, else the contents of the host's token file.
    pub token: String,
}

impl fmt::Debug for LocalHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalHost").finish_non_exhaustive()
    }
}

/// Finds the local host from the environment: the URL is `$YOI_URL`, else
/// `http://127.0.0.1:38700`; the token is `$YOI_TOKEN`, else the host's token file
/// (`$XDG_DATA_HOME/yoi/host.token`, else `~/.local/share/yoi/host.token`). When no
/// token is found the error names what was tried.
pub fn discover_local() -> Result<LocalHost, ClientError> {
    discover_in(|name| std::env::var_os(name))
}

/// [`discover_local`] with the environment given as a function (tests).
fn discover_in(env: impl Fn(&str) -> Option<OsString>) -> Result<LocalHost, ClientError> {
    let var = |name: &str| -> Result<Option<String>, ClientError> {
        match env(name).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .into_string()
                .map(Some)
                .map_err(|_| ClientError::config(format!("${name} is not valid UTF-8"))),
        }
    };
    let url = var("YOI_URL")?.unwrap_or_else(|| HostClient::DEFAULT_URL.to_string());
    if let Some(token) = var("YOI_TOKEN")? {
        return Ok(LocalHost {
            url,
            token: token.trim().to_string(),
        });
    }
    let non_empty = |name: &str| env(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let file = if let Some(xdg) = non_empty("XDG_DATA_HOME") {
        xdg.join("yoi").join(TOKEN_FILE)
    } else if let Some(home) = non_empty("HOME") {
        home.join(".local/share/yoi").join(TOKEN_FILE)
    } else {
        return Err(ClientError::config(
            "no access token for the host: $YOI_TOKEN is not set, and neither $XDG_DATA_HOME \
             nor $HOME is set to find the host's token file",
        ));
    };
    let token = match std::fs::read_to_string(&file) {
        Ok(text) => text.trim().to_string(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ClientError::config(format!(
                "no access token for the host: $YOI_TOKEN is not set and {} does not exist \
                 (`yoi-host serve` writes it on first start; a host with another data dir \
                 or token file needs $YOI_TOKEN)",
                file.display()
            )));
        }
        Err(e) => {
            return Err(ClientError::config(format!(
                "cannot read the host's token file {}: {e}",
                file.display()
            )));
        }
    };
    if token.is_empty() {
        return Err(ClientError::config(format!(
            "the host's token file {} is empty",
            file.display()
        )));
    }
    Ok(LocalHost { url, token })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let vars: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn yoi_token_wins_and_the_url_defaults_to_the_local_host() {
        let found = discover_in(env(&[("YOI_TOKEN", " abc \n"), ("HOME", "/nowhere")])).unwrap();
        assert_eq!(found.token, "abc");
        assert_eq!(found.url, "http://127.0.0.1:38700");
        let found = discover_in(env(&[("YOI_TOKEN", "abc"), ("YOI_URL", "http://h:1")])).unwrap();
        assert_eq!(found.url, "http://h:1");
        assert!(!format!("{found:?}").contains("abc"));
    }

    #[test]
    fn the_token_file_follows_the_hosts_data_dir_rule() {
        let dir = tempfile::tempdir().unwrap();
        let xdg = dir.path().join("xdg");
        let home = dir.path().join("home");
        std::fs::create_dir_all(xdg.join("yoi")).unwrap();
        std::fs::create_dir_all(home.join(".local/share/yoi")).unwrap();
        std::fs::write(xdg.join("yoi/host.token"), "from-xdg\n").unwrap();
        std::fs::write(home.join(".local/share/yoi/host.token"), "from-home\n").unwrap();
        let (xdg, home) = (xdg.to_str().unwrap(), home.to_str().unwrap());

        let found = discover_in(env(&[("XDG_DATA_HOME", xdg), ("HOME", home)])).unwrap();
        assert_eq!(found.token, "from-xdg");
        let found = discover_in(env(&[("XDG_DATA_HOME", ""), ("HOME", home)])).unwrap();
        assert_eq!(
            found.token, "from-home",
            "an empty XDG_DATA_HOME counts as unset"
        );
        let found = discover_in(env(&[("YOI_TOKEN", ""), ("HOME", home)])).unwrap();
        assert_eq!(
            found.token, "from-home",
            "an empty YOI_TOKEN counts as unset"
        );
    }

    #[test]
    fn nothing_found_names_what_was_tried() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_str().unwrap();
        let e = discover_in(env(&[("HOME", home)])).unwrap_err().to_string();
        assert!(e.contains("YOI_TOKEN"), "{e}");
        assert!(
            e.contains(&format!("{home}/.local/share/yoi/host.token")),
            "{e}"
        );
        let e = discover_in(env(&[])).unwrap_err().to_string();
        assert!(e.contains("YOI_TOKEN") && e.contains("HOME"), "{e}");

        std::fs::create_dir_all(dir.path().join(".local/share/yoi")).unwrap();
        std::fs::write(dir.path().join(".local/share/yoi/host.token"), " \n").unwrap();
        let e = discover_in(env(&[("HOME", home)])).unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
    }
}
