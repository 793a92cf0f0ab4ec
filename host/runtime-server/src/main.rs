//! `yoi-runtime serve`: see `yoi-runtime --help`.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use yoi_runtime_server::RuntimeServer;
use yoi_runtime_server::cli::{Cli, Command, ServeArgs};

/// Every event is a handful of small strings allocated and freed on several threads;
/// mimalloc does that markedly faster than glibc's allocator (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("yoi-runtime: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Command::Serve(args) = cli.command;
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("yoi-runtime: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let server = RuntimeServer::start(config).await?;
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
    let trigger = server.shutdown_trigger();
    tokio::spawn(async move {
        yoi_serving::termination_signal().await;
        trigger.trigger();
    });
    server.wait().await
}
