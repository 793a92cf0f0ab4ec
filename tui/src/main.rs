//! `yoi-tui`: see `yoi-tui --help` and the crate docs.

use std::process::ExitCode;

use clap::Parser;
use yoi_tui::{Cli, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before the terminal changes mode, so a missing token reads as a plain error.
    let (backend, options) = match cli.resolve() {
        Ok(resolved) => resolved,
        Err(e) => {
            eprintln!("yoi-tui: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("yoi-tui: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(options, backend)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("yoi-tui: {e:#}");
            ExitCode::FAILURE
        }
    }
}
