//! What a reload did, for the operator (the reload answer, the log).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The outcome of building a chain from the plugin files and the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReport {
    /// Whether the new chain is in use. It is only when nothing was refused; otherwise
    /// the previous chain stays.
    pub applied: bool,
    /// Plugin files that loaded, in file name order.
    pub loaded: Vec<LoadedPlugin>,
    /// What was refused and why.
    pub refused: Vec<Refusal>,
    /// The plugin names of the chain in use after this reload, in order.
    pub chain: Vec<String>,
}

/// A plugin file that loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadedPlugin {
    pub name: String,
    pub version: String,
    /// The file's name (not its path).
    pub file: String,
}

/// Something refused: a plugin file, or a configured entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The file's name, when a file is at fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The plugin's name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    pub reason: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}: ")?;
        }
        if let Some(plugin) = &self.plugin {
            write!(f, "plugin `{plugin}`: ")?;
        }
        f.write_str(&self.reason)
    }
}
