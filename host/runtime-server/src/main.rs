//! `yoi-runtime serve`: see `yoi-runtime --help`.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use yoi_runtime_server::RuntimeServer;
use yoi_runtime_server::cli::{Cli, Command, ServeArgs};

/// Every event is a handful of small strings allocated and freed on several threads;
/// mimalloc does that markedly faster than glibc's allocator (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let Command::Serve(args) = Cli::parse().command;
    yoi_serving::run_binary("yoi-runtime", || serve(args))
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let server = RuntimeServer::start(args.config()?).await?;
    if server.token_created() {
        tracing::info!(path = %server.token_file().display(), "wrote a new access token");
    }
    // One line on stdout for scripts and tests: where to connect, where the token is.
    let mut stdout = std::io::stdout();
    let _ = writeln!(
        stdout,
        "yoi-runtime listening on http://{} (token: {})",
        server.local_addr(),
        server.token_file().display()
    );
    let _ = stdout.flush();
    server.shutdown_trigger().on_termination_signal();
    server.wait().await
}
