//! `yoi-host serve`: see `yoi-host --help`.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use yoi_host::Host;
use yoi_host::cli::{Cli, Command, ServeArgs};

/// Every event is a handful of small strings allocated and freed on several threads;
/// mimalloc does that markedly faster than glibc's allocator (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let Command::Serve(args) = Cli::parse().command;
    yoi_serving::run_binary("yoi-host", || serve(args))
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let host = Host::start(args.config()?).await?;
    if host.token_created() {
        tracing::info!(path = %host.token_file().display(), "wrote a new access token");
    }
    // One line on stdout for scripts and tests: where to connect, where the token is.
    let mut stdout = std::io::stdout();
    let _ = writeln!(
        stdout,
        "yoi-host listening on http://{} (token: {})",
        host.local_addr(),
        host.token_file().display()
    );
    let _ = stdout.flush();
    host.shutdown_trigger().on_termination_signal();
    host.reload_on_hangup()?;
    host.wait().await
}
