//! A tiny stream client: prints every frame of a worker's stream (or of all workers).
//!
//! ```sh
//! cargo run -p yoi-host --example watch -- w_1            # one worker
//! cargo run -p yoi-host --example watch                   # every worker
//! cargo run -p yoi-host --example watch -- w_1 --cursor c1…  # resume after a cursor
//! ```
//!
//! `YOI_HOST` (default `127.0.0.1:38700`) is the host; the token is `$YOI_TOKEN`, else the
//! file `host.token` in `$YOI_DATA_DIR` or the default data dir.

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut worker = None;
    let mut cursor = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--cursor" => cursor = args.next(),
            _ => worker = Some(arg),
        }
    }
    let host = std::env::var("YOI_HOST").unwrap_or_else(|_| "127.0.0.1:38700".into());
    let token = match std::env::var("YOI_TOKEN") {
        Ok(token) => token,
        Err(_) => {
            let dir = std::env::var_os("YOI_DATA_DIR")
                .map(std::path::PathBuf::from)
                .or_else(yoi_host::config::default_data_dir)
                .ok_or_else(|| anyhow::anyhow!("set YOI_TOKEN or YOI_DATA_DIR"))?;
            std::fs::read_to_string(dir.join(yoi_host::config::TOKEN_FILE))?
                .trim()
                .to_string()
        }
    };
    let path = match &worker {
        Some(w) => format!("/api/v1/runtimes/local/workers/{w}/events/ws"),
        None => "/api/v1/events/ws".to_string(),
    };
    let query = cursor.map(|c| format!("?cursor={c}")).unwrap_or_default();
    let mut request = format!("ws://{host}{path}{query}").into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
    while let Some(message) = ws.next().await {
        match message? {
            Message::Text(text) => println!("{}", text.as_str()),
            Message::Close(frame) => {
                eprintln!("closed: {frame:?}");
                break;
            }
            _ => {}
        }
    }
    Ok(())
}
