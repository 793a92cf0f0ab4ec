//! Command line: `yoi-runtime serve [--config FILE] [--bind ADDR] [--data-dir DIR]
//! [--token-file FILE] [--component FILE]`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ConfigError};

#[derive(Debug, Parser)]
#[command(
    name = "yoi-runtime",
    version,
    about = "A yoi runtime as a server: its workers over the runtime API (REST and WebSocket)",
    long_about = "A yoi runtime as a server. `yoi-runtime serve` opens one runtime (the native \
core, or the WebAssembly component given with --component) with its event store in the data \
directory, writes an access token to <data-dir>/runtime.token on first start, and serves the \
runtime API under /v1 (Authorization: Bearer <token>) on 127.0.0.1:38701. A yoi-host fronts it \
as a remote runtime; scripts may use it directly.\n\nLogs go to stderr; set RUST_LOG (e.g. \
RUST_LOG=yoi_runtime_server=debug) to see more."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the runtime API until SIGINT or SIGTERM.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML config file; every key is optional (see the README, "yoi-runtime serve").
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:38701; config key `bind`].
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<SocketAddr>,
    /// Where the event store, workspaces and token live [default: $XDG_DATA_HOME/yoi-runtime
    /// or ~/.local/share/yoi-runtime; config key `data_dir`].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The access token file, created (mode 0600) when missing [default:
    /// <data-dir>/runtime.token; config key `token_file`].
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Run this runtime component (in wasmtime) instead of the native core [config key
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
        if let Some(file) = &self.token_file {
            config.token_file = Some(file.clone());
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
        let cli = Cli::parse_from([
            "yoi-runtime",
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--token-file",
            "/tmp/t",
        ]);
        let Command::Serve(args) = cli.command;
        let config = args.config().unwrap();
        assert_eq!(config.bind.port(), 0);
        assert_eq!(config.token_file, Some(PathBuf::from("/tmp/t")));
    }
}
