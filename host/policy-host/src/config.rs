//! What the host configures: where plugins are, and the chain.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One `[[policies]]` entry: a plugin, by the name it reports, and its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyEntry {
    pub plugin: String,
    /// Given to the plugin once, when the chain is built (`{}` when absent).
    #[serde(default = "no_settings")]
    pub settings: serde_json::Value,
}

fn no_settings() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

impl PolicyEntry {
    pub fn new(plugin: impl Into<String>, settings: serde_json::Value) -> Self {
        PolicyEntry {
            plugin: plugin.into(),
            settings,
        }
    }
}

/// Where plugin files are: every library in `dir` (files ending in the platform's
/// library extension, `.so` on Linux; hidden files are skipped; a missing `dir` has
/// none), and each of `files`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginSources {
    pub dir: Option<PathBuf>,
    pub files: Vec<PathBuf>,
}

impl PluginSources {
    /// Every plugin in `dir`.
    pub fn dir(dir: impl Into<PathBuf>) -> Self {
        PluginSources {
            dir: Some(dir.into()),
            files: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct HostConfig {
        policies: Vec<PolicyEntry>,
    }

    #[test]
    fn entries_read_from_toml_as_a_host_config_writes_them() {
        let config: HostConfig = toml::from_str(
            r#"
            [[policies]]
            plugin = "truncate-tool-output"
            settings = { roles = ["observer"], max_bytes = 4096 }

            [[policies]]
            plugin = "read-only"
            "#,
        )
        .unwrap();
        assert_eq!(
            config.policies,
            [
                PolicyEntry::new(
                    "truncate-tool-output",
                    serde_json::json!({"roles": ["observer"], "max_bytes": 4096})
                ),
                PolicyEntry::new("read-only", serde_json::json!({})),
            ]
        );
        let typo = toml::from_str::<HostConfig>("[[policies]]\nplugin = \"a\"\nsetings = {}");
        let message = typo.unwrap_err().to_string();
        assert!(message.contains("unknown field `setings`"), "{message}");
    }
}
