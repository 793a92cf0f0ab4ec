//! yoi benchmarks: `cargo xtask bench [NAME]` (release build).
//!
//! Each section prints its figures and the run merges them into
//! `target/bench/results.json`. Sections: `core` (the runtime core, native vs wasm),
//! `local` (a whole LocalRuntime with persistence), `host` (end to end through
//! `yoi-host` and WebSocket observers, against a bare tokio-tungstenite baseline),
//! `host.policy` (the three example policy plugins against pass-through), `tui`
//! (the terminal client over a 10,000-message history), `ready` (start-to-ready over a
//! million events: full replay against the worker index), `provider` (an
//! OpenAI-compatible model through the host), `remote` (the host fronting a
//! `yoi-runtime serve` on loopback against the same host with the runtime embedded),
//! `scale` (100,000 workers on one runtime), `store` (one small commit to the event
//! store, back to back and after a pause).

/// The same allocator as the `yoi-host` binary, so the figures are the shipped ones.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod core;
mod host;
mod local;
mod provider;
mod ready;
mod remote;
mod results;
mod scale;
mod store;
mod tui;

use results::Results;

fn main() -> anyhow::Result<()> {
    let filter = std::env::args().nth(1).unwrap_or_default();
    let wanted = |name: &str| filter.is_empty() || name.contains(filter.as_str());
    let mut results = Results::default();
    if wanted("core") {
        core::run(&mut results)?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if wanted("local") {
        rt.block_on(local::run(&mut results))?;
    }
    if wanted("host") {
        rt.block_on(host::run(&mut results))?;
    }
    if wanted("host.policy") {
        rt.block_on(host::policy(&mut results))?;
    }
    if wanted("provider") {
        rt.block_on(provider::run(&mut results))?;
    }
    if wanted("remote") {
        rt.block_on(remote::run(&mut results))?;
    }
    if wanted("scale") {
        rt.block_on(scale::run(&mut results))?;
    }
    if wanted("store") {
        store::run(&mut results)?;
    }
    if wanted("tui") {
        tui::run(&mut results)?;
    }
    if wanted("ready") {
        rt.block_on(ready::run(&mut results))?;
    }
    let path = results.save()?;
    println!("saved {}", path.display());
    Ok(())
}
