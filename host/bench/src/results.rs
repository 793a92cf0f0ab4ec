//! Figures: printed as they are measured and merged into one flat JSON object
//! (`target/bench/results.json`, figure name → number) so runs can be compared.

use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Default)]
pub struct Results {
    figures: BTreeMap<String, f64>,
}

impl Results {
    pub fn record(&mut self, name: &str, value: f64) {
        println!("{name:<36} {}", format_figure(value));
        self.figures.insert(name.to_string(), value);
    }

    /// Merges this run's figures into the results file (figures not measured in this run
    /// keep their earlier values).
    pub fn save(&self) -> anyhow::Result<PathBuf> {
        let path = std::env::var_os("YOI_BENCH_RESULTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("target/bench/results.json"));
        let mut all: BTreeMap<String, serde_json::Value> = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        for (name, value) in &self.figures {
            let rounded = (value * 1000.0).round() / 1000.0;
            all.insert(name.clone(), serde_json::json!(rounded));
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, serde_json::to_vec_pretty(&all)?)?;
        Ok(path)
    }
}

fn format_figure(value: f64) -> String {
    if value.abs() >= 1000.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.3}")
    }
}
