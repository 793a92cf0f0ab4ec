//! The command line: `yoi-tui [--host URL] [--token-file FILE] [--runtime ID] [--worker ID]
//! [--new-worker NAME] [--inline] [--direct URL]`.

use std::path::PathBuf;

use clap::Parser;
use yoi_client::{HostClient, RuntimeClient, discover_local};

use crate::app::Options;
use crate::net::Backend;

#[derive(Debug, Parser)]
#[command(
    name = "yoi-tui",
    version,
    about = "The terminal client of yoi-host: pick a runtime and a worker, chat, watch runs live",
    long_about = "The terminal client of yoi-host: pick a runtime and a worker (or create one), \
chat with it, and watch reasoning, tool calls, the answer, usage and status live, across \
reconnects.\n\nWith no flags it finds the local host (http://127.0.0.1:38700, or $YOI_URL) and \
its access token ($YOI_TOKEN, else the token file the host wrote: $XDG_DATA_HOME/yoi/host.token \
or ~/.local/share/yoi/host.token).\n\nPress ? (or F1) for the keys."
)]
pub struct Cli {
    /// The host's URL [default: $YOI_URL, else http://127.0.0.1:38700].
    #[arg(long, value_name = "URL")]
    pub host: Option<String>,
    /// A file holding the access token [default: $YOI_TOKEN, else the local host's token
    /// file].
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Open this runtime's workers (with one runtime, it is picked anyway).
    #[arg(long, value_name = "ID")]
    pub runtime: Option<String>,
    /// Open this worker (id or name) right away.
    #[arg(long, value_name = "ID", conflicts_with = "new_worker")]
    pub worker: Option<String>,
    /// Create a worker with this name (the runtime's first model, every tool) and open it.
    #[arg(long, value_name = "NAME")]
    pub new_worker: Option<String>,
    /// Draw below the prompt and print the conversation into the terminal's own
    /// scrollback, instead of using the alternate screen.
    #[arg(long)]
    pub inline: bool,
    /// DEBUG MODE: talk to one `yoi-runtime serve` at URL directly, bypassing any host
    /// (token from --token-file or $YOI_TOKEN). Never needed for normal use.
    #[arg(long, value_name = "URL", conflicts_with = "host")]
    pub direct: Option<String>,
}

impl Cli {
    /// Who to talk to, with the token found, and the options of the client.
    pub fn resolve(&self) -> anyhow::Result<(Backend, Options)> {
        let file_token = match &self.token_file {
            Some(path) => Some(read_token(path)?),
            None => None,
        };
        let (backend, label) = match &self.direct {
            Some(url) => {
                let token = match file_token {
                    Some(token) => token,
                    None => std::env::var("YOI_TOKEN")
                        .ok()
                        .filter(|t| !t.trim().is_empty())
                        .map(|t| t.trim().to_string())
                        .ok_or_else(|| {
                            anyhow::anyhow!(
                                "--direct needs the runtime's token: --token-file FILE or $YOI_TOKEN"
                            )
                        })?,
                };
                (
                    Backend::Direct(RuntimeClient::new(url, &token)?),
                    "DIRECT to one runtime (debug mode, no host)".to_string(),
                )
            }
            None => {
                let (url, token) = match (&self.host, file_token) {
                    (Some(url), Some(token)) => (url.clone(), token),
                    (host, token) => {
                        let local = discover_local()?;
                        (
                            host.clone().unwrap_or(local.url),
                            token.unwrap_or(local.token),
                        )
                    }
                };
                (Backend::Host(HostClient::new(&url, &token)?), url)
            }
        };
        let options = Options {
            inline: self.inline,
            runtime: self.runtime.clone(),
            worker: self.worker.clone(),
            new_worker: self.new_worker.clone(),
            host_label: label,
            direct: self.direct.is_some(),
            session: session_id(),
        };
        Ok((backend, options))
    }
}

fn read_token(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read the token file {}: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        anyhow::bail!("the token file {} is empty", path.display());
    }
    Ok(token.to_string())
}

/// Distinguishes the request ids of this start of the client from earlier ones.
fn session_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "tui-{:x}-{:x}",
        std::process::id(),
        nanos & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
        let cli = Cli::parse_from(["yoi-tui", "--runtime", "local", "--new-worker", "demo"]);
        assert_eq!(cli.new_worker.as_deref(), Some("demo"));
        assert!(Cli::try_parse_from(["yoi-tui", "--worker", "w_1", "--new-worker", "x"]).is_err());
        assert!(Cli::try_parse_from(["yoi-tui", "--host", "h", "--direct", "d"]).is_err());
    }
}
