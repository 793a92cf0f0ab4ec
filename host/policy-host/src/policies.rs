//! The chain in use and its reloads: plugins loaded from their sources, the configured
//! entries initialised, the new chain swapped in atomically only when nothing was
//! refused.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::chain::{ChainOptions, PolicyChain};
use crate::config::{PluginSources, PolicyEntry};
use crate::instance::Instance;
use crate::library::{Plugin, PluginLoader};
use crate::metrics::PolicyMetrics;
use crate::report::{LoadedPlugin, Refusal, ReloadReport};

/// A borrow of the chain in use: cheap, for one decision or a burst of them. Do not hold
/// it across an `.await` or for long (it delays freeing a replaced chain); clone the
/// `Arc` inside for that.
pub type ChainGuard = arc_swap::Guard<Arc<PolicyChain>>;

/// The host's policy chain and how it is reloaded.
#[derive(Debug)]
pub struct Policies {
    loader: PluginLoader,
    options: ChainOptions,
    metrics: Arc<PolicyMetrics>,
    current: ArcSwap<PolicyChain>,
    /// One reload at a time, so reports describe what they did.
    reloading: Mutex<()>,
}

impl Policies {
    /// Starts with the empty chain (pass-through); [`reload`](Self::reload) installs one.
    pub fn new(loader: PluginLoader, options: ChainOptions) -> Self {
        let metrics = Arc::new(PolicyMetrics::default());
        Policies {
            loader,
            options,
            current: ArcSwap::from_pointee(PolicyChain::empty(metrics.clone())),
            metrics,
            reloading: Mutex::new(()),
        }
    }

    /// Builds the first chain; `Err` (with the report) when anything is refused. A host
    /// should not start then: serving without the configured policies would fail open.
    pub fn open(
        loader: PluginLoader,
        options: ChainOptions,
        sources: &PluginSources,
        entries: &[PolicyEntry],
    ) -> Result<(Self, ReloadReport), ReloadReport> {
        let policies = Policies::new(loader, options);
        let report = policies.reload(sources, entries);
        if report.applied {
            Ok((policies, report))
        } else {
            Err(report)
        }
    }

    /// The chain in use.
    pub fn chain(&self) -> ChainGuard {
        self.current.load()
    }

    /// Counters shared by every chain of this value (they survive reloads).
    pub fn metrics(&self) -> &Arc<PolicyMetrics> {
        &self.metrics
    }

    /// Loads every plugin of `sources` and builds the chain `entries` describe. With
    /// nothing refused the new chain replaces the one in use atomically (calls already
    /// running finish on the old one; the next take the new); otherwise the chain in use
    /// stays and the report says why.
    ///
    /// Blocking (file I/O, the dynamic loader, plugin initialisation): call it off async
    /// worker threads.
    pub fn reload(&self, sources: &PluginSources, entries: &[PolicyEntry]) -> ReloadReport {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let (plugins, mut refused) = load_sources(&self.loader, sources);
        let loaded = plugins
            .iter()
            .map(|p| LoadedPlugin {
                name: p.name().into(),
                version: p.version().into(),
                file: p.file().into(),
            })
            .collect();
        let applied = match build(&plugins, entries, &self.options, &self.metrics) {
            Ok(chain) if refused.is_empty() => {
                self.current.store(Arc::new(chain));
                true
            }
            Ok(_) => false,
            Err(more) => {
                refused.extend(more);
                false
            }
        };
        for refusal in &refused {
            tracing::warn!(%refusal, "policy plugin refused");
        }
        let chain = self
            .chain()
            .plugins()
            .map(|p| p.name().to_owned())
            .collect();
        ReloadReport {
            applied,
            loaded,
            refused,
            chain,
        }
    }
}

/// Loads every plugin file of `sources`, in file name order (the directory's first).
/// Two files reporting one name are ambiguous: the later one is refused.
fn load_sources(
    loader: &PluginLoader,
    sources: &PluginSources,
) -> (Vec<Arc<Plugin>>, Vec<Refusal>) {
    let mut refused = Vec::new();
    let mut files = match &sources.dir {
        Some(dir) => libraries_in(dir).unwrap_or_else(|e| {
            refused.push(Refusal {
                file: None,
                plugin: None,
                reason: format!("cannot read the plugins folder {}: {e}", dir.display()),
            });
            Vec::new()
        }),
        None => Vec::new(),
    };
    for file in &sources.files {
        if !files.contains(file) {
            files.push(file.clone());
        }
    }
    let mut plugins: Vec<Arc<Plugin>> = Vec::new();
    let mut files_by_name: BTreeMap<String, String> = BTreeMap::new();
    for file in &files {
        match loader.load(file) {
            Ok(plugin) => match files_by_name.get(plugin.name()) {
                Some(first) => refused.push(Refusal {
                    file: Some(plugin.file().into()),
                    plugin: Some(plugin.name().into()),
                    reason: format!("{first} already reports this name"),
                }),
                None => {
                    files_by_name.insert(plugin.name().into(), plugin.file().into());
                    plugins.push(plugin);
                }
            },
            Err(e) => refused.push(Refusal {
                file: Some(display_name(file)),
                plugin: None,
                reason: e.to_string(),
            }),
        }
    }
    (plugins, refused)
}

/// The libraries of `dir`, by file name; none when it does not exist.
fn libraries_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        let library = path
            .extension()
            .is_some_and(|e| e == std::env::consts::DLL_EXTENSION);
        if library && !hidden && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn display_name(file: &Path) -> String {
    file.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.display().to_string())
}

/// Initialises each entry's plugin with its settings, in order.
fn build(
    plugins: &[Arc<Plugin>],
    entries: &[PolicyEntry],
    options: &ChainOptions,
    metrics: &Arc<PolicyMetrics>,
) -> Result<PolicyChain, Vec<Refusal>> {
    let mut links = Vec::with_capacity(entries.len());
    let mut refused = Vec::new();
    for entry in entries {
        let Some(plugin) = plugins.iter().find(|p| p.name() == entry.plugin) else {
            let names: Vec<&str> = plugins.iter().map(|p| p.name()).collect();
            refused.push(Refusal {
                file: None,
                plugin: Some(entry.plugin.clone()),
                reason: format!(
                    "configured, but no plugin file reports this name (loaded: {})",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            });
            continue;
        };
        match Instance::new(plugin, &entry.settings) {
            Ok(instance) => links.push(instance),
            Err(error) => {
                metrics.failure(plugin.name(), "init", &error);
                refused.push(Refusal {
                    file: Some(plugin.file().into()),
                    plugin: Some(plugin.name().into()),
                    reason: format!("its settings were refused: {error}"),
                });
            }
        }
    }
    if refused.is_empty() {
        Ok(PolicyChain::new(links, options, metrics.clone()))
    } else {
        Err(refused)
    }
}
