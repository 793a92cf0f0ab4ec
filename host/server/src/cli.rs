//! Command line: `yoi-host serve [--config FILE] [--bind ADDR] [--data-dir DIR] [--component FILE]`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ConfigError};

#[derive(Debug, Parser)]
#[command(
    name = "yoi-host",
    version,
    about = "The yoi backend: serves LLM worker runtimes to clients over REST and WebSocket",
    long_about = "The yoi backend. `yoi-host serve` loads its runtimes (by default one embedded \
runtime `local`, the WebAssembly component built by `cargo xtask build-guest`), writes an access \
token to <data-dir>/host.token on first start, and serves the client API under /api/v1 \
(Authorization: Bearer <token>) on 127.0.0.1:38700. Policy plugins dropped into \
<data-dir>/plugins and named in [[policies]] decide what each client sees and may do; SIGHUP \
reloads them.\n\nLogs go to stderr; set RUST_LOG (e.g. \
RUST_LOG=yoi_host=debug) to see more."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the client API until SIGINT or SIGTERM (SIGHUP reloads the policy chain).
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML config file; every key is optional (see the README, "Configuration").
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:38700; config key `bind`].
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<SocketAddr>,
    /// Where the access token and the runtimes' event stores live [default:
    /// $XDG_DATA_HOME/yoi or ~/.local/share/yoi; config key `data_dir`].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The runtime component for embedded runtimes [default: $YOI_GUEST_WASM, else the
    /// file `cargo xtask build-guest` writes, target/guest/yoi_runtime.wasm; config key
    /// `component`].
    #[arg(long, value_name = "FILE")]
    pub component: Option<PathBuf>,
}

impl ServeArgs {
    /// The config file (or defaults) with the command-line overrides applied.
    pub fn config(&self) -> Result<Config, ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(bind) = self.bind {
            config.bind = bind;
        }
        if let Some(dir) = &self.data_dir {
            config.data_dir = Some(dir.clone());
        }
        if let Some(component) = &self.component {
            config.component = Some(component.clone());
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
        let cli = Cli::parse_from(["yoi-host", "serve", "--bind", "127.0.0.1:0"]);
        let Command::Serve(args) = cli.command;
        assert_eq!(args.config().unwrap().bind.port(), 0);
    }
}
