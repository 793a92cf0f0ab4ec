//! Where the host's policy plugins come from, the chain opened at start-up, and reloads.
//!
//! Plugins are the libraries in `plugins_dir` (default `<data-dir>/plugins`), loaded
//! through private copies in `<data-dir>/cache/plugins`; the chain is `[[policies]]`,
//! in order. A reload (`SIGHUP`, `POST /api/v1/admin/reload`) loads the folder again
//! and re-reads `[[policies]]` from the config file the host was started with (a host
//! configured in code reuses its entries). It is all or nothing: anything refused, an
//! unreadable config file included, leaves the chain in use.

use std::path::{Path, PathBuf};

use yoi_policy_host::{
    ChainOptions, PluginLoader, PluginSources, Policies, PolicyEntry, Refusal, ReloadReport,
};

use crate::config::{Config, PLUGINS_STAGING_DIR};

/// What a chain is built from.
#[derive(Debug, Clone)]
pub struct PolicySetup {
    sources: PluginSources,
    staging: PathBuf,
    /// The config file whose `[[policies]]` a reload reads, if the host has one.
    file: Option<PathBuf>,
    /// The entries the host started with.
    entries: Vec<PolicyEntry>,
}

impl PolicySetup {
    pub fn new(config: &Config, data_dir: &Path) -> Self {
        PolicySetup {
            sources: PluginSources::dir(config.resolved_plugins_dir(data_dir)),
            staging: data_dir.join(PLUGINS_STAGING_DIR),
            file: config.file.clone(),
            entries: config.policies.clone(),
        }
    }

    /// The first chain. Errs, saying what was refused and why, when anything was: a host
    /// without its configured policies would fail open. Blocking.
    pub fn open(&self) -> anyhow::Result<(Policies, ReloadReport)> {
        let loader = PluginLoader::new(&self.staging).map_err(|e| {
            anyhow::anyhow!(
                "cannot prepare the plugin staging folder {}: {e}",
                self.staging.display()
            )
        })?;
        Policies::open(
            loader,
            ChainOptions::default(),
            &self.sources,
            &self.entries,
        )
        .map_err(|report| {
            let refused: Vec<String> = report.refused.iter().map(|r| r.to_string()).collect();
            anyhow::anyhow!(
                "policy plugins refused, not starting (fix or remove them, or the \
                     `[[policies]]` naming them): {}",
                refused.join("; ")
            )
        })
    }

    /// Builds the chain again from the plugins folder and the config file's
    /// `[[policies]]`; see [`Policies::reload`]. Blocking.
    pub fn reload(&self, policies: &Policies) -> ReloadReport {
        let entries = match &self.file {
            Some(file) => match Config::load(file) {
                Ok(config) => config.policies,
                Err(e) => return refused_config(policies, e.to_string()),
            },
            None => self.entries.clone(),
        };
        let report = policies.reload(&self.sources, &entries);
        tracing::info!(
            applied = report.applied,
            chain = ?report.chain,
            refused = report.refused.len(),
            "policy chain reloaded"
        );
        report
    }
}

/// The answer to a reload whose config file could not be read: nothing changes.
fn refused_config(policies: &Policies, reason: String) -> ReloadReport {
    tracing::warn!(%reason, "policy reload refused: the config file cannot be read");
    ReloadReport {
        applied: false,
        loaded: Vec::new(),
        refused: vec![Refusal {
            file: None,
            plugin: None,
            reason,
        }],
        chain: policies
            .chain()
            .plugins()
            .map(|p| p.name().to_owned())
            .collect(),
    }
}
