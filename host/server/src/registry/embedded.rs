//! Embedded runtimes: a `LocalRuntime` on the runtime component, in this process.

use std::path::Path;

use yoi_core::WasmCore;
use yoi_driver::ModelCatalog;
use yoi_runtime::LocalRuntime;
use yoi_serving::LocalSource;

use crate::config::EmbeddedConfig;

/// Opens an embedded runtime `id` as a stream source (blocking: compiles the component,
/// restores the log). `default_component` is the config's top-level `component`.
pub(super) fn open(
    id: &str,
    config: &EmbeddedConfig,
    default_component: Option<&Path>,
    dir: &Path,
    cache_dir: &Path,
    models: &ModelCatalog,
) -> anyhow::Result<LocalSource> {
    let component = yoi_core::component_file(config.component.as_deref().or(default_component))
        .map_err(anyhow::Error::msg)?;
    let (engine, component) =
        yoi_core::shared_component(&component, cache_dir).map_err(|f| anyhow::anyhow!("{f}"))?;
    let guest_limits = config.settings.core.guest_limits();
    let runtime: LocalRuntime = config
        .settings
        .open(dir, models, move || {
            WasmCore::instantiate(&engine, &component, guest_limits)
        })
        .map_err(|e| anyhow::anyhow!("runtime {id}: {e}"))?;
    Ok(LocalSource::new(id, runtime))
}
