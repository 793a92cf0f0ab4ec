//! Figures: printed as they are measured and merged into one flat JSON object
//! (`target/bench/results.json`, figure name → number) so runs can be compared.

use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Default)]
pub struct Results {
    figures: BTreeMap<String, f64>,
}

impl Results {
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

/// How many times each measurement is repeated (`YOI_BENCH_ROUNDS`, default 5). The
/// figures are medians: a single short run on a shared 2-core machine swings by ±20 %.
pub fn rounds() -> usize {
    std::env::var("YOI_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(5)
}

/// One figure measured once per round.
#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<f64>);

impl Samples {
    pub fn push(&mut self, value: f64) {
        self.0.push(value);
    }

    pub fn median(&self) -> f64 {
        let mut sorted = self.0.clone();
        sorted.sort_by(f64::total_cmp);
        match sorted.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => sorted[n / 2],
            n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        }
    }

    /// `min..max` of the rounds, for the printed spread.
    pub fn spread(&self) -> String {
        let min = self.0.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.0.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!("{}..{}", format_figure(min), format_figure(max))
    }
}

impl Results {
    /// [`record_median`](Self::record_median) of each figure, by name.
    pub fn record_medians<const N: usize>(&mut self, names: [&str; N], samples: &[Samples; N]) {
        for (name, samples) in names.iter().zip(samples) {
            self.record_median(name, samples);
        }
    }

    /// Records the median of `samples` and prints the spread of the rounds beside it.
    pub fn record_median(&mut self, name: &str, samples: &Samples) {
        let value = samples.median();
        println!(
            "{name:<36} {:<12} (median of {}: {})",
            format_figure(value),
            samples.0.len(),
            samples.spread()
        );
        self.figures.insert(name.to_string(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_rounds() {
        let mut s = Samples::default();
        for v in [5.0, 1.0, 3.0] {
            s.push(v);
        }
        assert_eq!(s.median(), 3.0);
        s.push(10.0);
        assert_eq!(s.median(), 4.0);
        assert_eq!(s.spread(), "1.000..10.000");
    }
}
