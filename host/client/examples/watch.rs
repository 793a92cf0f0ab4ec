//! A tiny stream client: prints every frame of a worker's stream (or of all workers) as
//! one JSON line, and the connection's state on stderr. It reconnects by itself (try
//! restarting the host) and resumes where it was.
//!
//! ```sh
//! cargo run -p yoi-client --example watch -- w_1                 # one worker of `local`
//! cargo run -p yoi-client --example watch                        # every worker
//! cargo run -p yoi-client --example watch -- w_1 --cursor c1…    # resume after a cursor
//! cargo run -p yoi-client --example watch -- w_1 --runtime other
//! ```
//!
//! The host is `$YOI_URL` (default `http://127.0.0.1:38700`); the token is `$YOI_TOKEN`,
//! else the host's token file in its default data dir.

use std::process::ExitCode;

use serde::Serialize;
use yoi_client::{ConnState, EventStream, HostClient, StreamCursor, StreamItem};

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut worker, mut cursor, mut runtime) = (None, None, "local".to_string());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--cursor" => cursor = args.next(),
            "--runtime" => runtime = args.next().unwrap_or(runtime),
            _ => worker = Some(arg),
        }
    }
    let host = match HostClient::discover() {
        Ok(host) => host,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match worker {
        Some(worker) => match cursor.as_deref().map(str::parse).transpose() {
            Ok(after) => watch(host.runtime(&runtime).worker_stream(&worker, after)).await,
            Err(e) => Err(e.to_string()),
        },
        None => match cursor.as_deref().map(str::parse).transpose() {
            Ok(after) => watch(host.all_stream(after)).await,
            Err(e) => Err(e.to_string()),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn watch<C: StreamCursor + Serialize>(mut stream: EventStream<C>) -> Result<(), String> {
    while let Some(item) = stream.next().await {
        match item {
            StreamItem::Frame(frame) => match serde_json::to_string(&frame) {
                Ok(line) => println!("{line}"),
                Err(e) => return Err(format!("cannot print a frame: {e}")),
            },
            StreamItem::Status(ConnState::GaveUp(e)) => return Err(format!("stream ended: {e}")),
            StreamItem::Status(ConnState::Reconnecting {
                attempt,
                after,
                reason,
            }) => eprintln!("reconnecting in {after:.1?} (attempt {attempt}): {reason}"),
            StreamItem::Status(state) => eprintln!("{state:?}"),
        }
    }
    Ok(())
}
