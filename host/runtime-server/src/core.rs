//! Which core the runtime runs, and opening the runtime on it.

use std::path::{Path, PathBuf};

use yoi_core::NativeCore;
use yoi_driver::ModelCatalog;
use yoi_runtime::LocalRuntime;
use yoi_runtime::config::RuntimeSettings;

/// The core of the served runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreChoice {
    /// The runtime core linked into this process (the default).
    Native,
    /// The runtime component in wasmtime (`--component FILE`).
    Wasm(PathBuf),
}

impl CoreChoice {
    /// The core for `component` (if given); errs, saying what to do, when the file is
    /// missing or this build has no wasm support.
    pub fn new(component: Option<&Path>) -> Result<Self, String> {
        match component {
            None => Ok(CoreChoice::Native),
            Some(path) => wasm_component(path).map(CoreChoice::Wasm),
        }
    }

    /// What `GET /v1/runtime` reports as the runtime's `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            CoreChoice::Native => "native",
            CoreChoice::Wasm(_) => "wasm",
        }
    }

    /// Opens (or creates) the runtime in `dir`, serving `scripted` and `models`
    /// (blocking: restores its event log, and for a component compiles it, through the
    /// compiled-code cache in `cache_dir`).
    pub fn open(
        &self,
        settings: &RuntimeSettings,
        models: &ModelCatalog,
        dir: &Path,
        cache_dir: &Path,
    ) -> anyhow::Result<LocalRuntime> {
        let opened = match self {
            CoreChoice::Native => settings.open(dir, models, || Ok(NativeCore::new())),
            CoreChoice::Wasm(component) => {
                return open_wasm(settings, models, dir, component, cache_dir);
            }
        };
        opened.map_err(|e| anyhow::anyhow!("opening the runtime: {e}"))
    }
}

#[cfg(feature = "wasm")]
fn wasm_component(path: &Path) -> Result<PathBuf, String> {
    yoi_core::component_file(Some(path))
}

#[cfg(not(feature = "wasm"))]
const NO_WASM: &str = "this yoi-runtime was built without the `wasm` feature, so it cannot \
    run a component; leave out --component (the native core runs the same runtime), or \
    build it with `--features wasm`";

#[cfg(not(feature = "wasm"))]
fn wasm_component(_: &Path) -> Result<PathBuf, String> {
    Err(NO_WASM.to_string())
}

#[cfg(feature = "wasm")]
fn open_wasm(
    settings: &RuntimeSettings,
    models: &ModelCatalog,
    dir: &Path,
    component: &Path,
    cache_dir: &Path,
) -> anyhow::Result<LocalRuntime> {
    use yoi_core::WasmCore;
    let (engine, component) =
        yoi_core::shared_component(component, cache_dir).map_err(|f| anyhow::anyhow!("{f}"))?;
    let guest_limits = settings.core.guest_limits();
    settings
        .open(dir, models, move || {
            WasmCore::instantiate(&engine, &component, guest_limits)
        })
        .map_err(|e| anyhow::anyhow!("opening the runtime: {e}"))
}

#[cfg(not(feature = "wasm"))]
fn open_wasm(
    _: &RuntimeSettings,
    _: &ModelCatalog,
    _: &Path,
    _: &Path,
    _: &Path,
) -> anyhow::Result<LocalRuntime> {
    anyhow::bail!(NO_WASM)
}
