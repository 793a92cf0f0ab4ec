//! [`ModelCatalog`]: which models a runtime serves, by which provider, with which
//! context budget.
//!
//! A model name is either exact (`scripted`, `openai/gpt-4o-mini`) or belongs to a
//! provider that accepts any of its models (`openai/<anything>`, configured with
//! `models = ["*"]`). Exact names win. The catalog also yields the prompt-token budgets
//! the runtime core trims model requests to (`yoi_protocol::ModelBudget`).

use std::collections::BTreeMap;
use std::sync::Arc;

use yoi_protocol::ModelBudget;

use crate::provider::Provider;

#[derive(Clone)]
struct Entry {
    provider: Arc<dyn Provider>,
    prompt_tokens: Option<u32>,
}

/// The models a runtime serves. Cheap to clone (providers are shared).
#[derive(Clone, Default)]
pub struct ModelCatalog {
    exact: BTreeMap<String, Entry>,
    /// Provider name → the provider that serves every `name/<model-id>`.
    any_of: BTreeMap<String, Entry>,
}

impl std::fmt::Debug for ModelCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelCatalog")
            .field("models", &self.models())
            .finish()
    }
}

impl ModelCatalog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `model` (an exact name) with `provider`; `prompt_tokens` is its budget
    /// (`None`: requests carry the whole transcript).
    pub fn add(
        &mut self,
        model: impl Into<String>,
        provider: Arc<dyn Provider>,
        prompt_tokens: Option<u32>,
    ) -> &mut Self {
        self.exact.insert(
            model.into(),
            Entry {
                provider,
                prompt_tokens,
            },
        );
        self
    }

    /// Serves every `provider_name/<model-id>` with `provider`, each with the budget
    /// `prompt_tokens`.
    pub fn add_any_of(
        &mut self,
        provider_name: impl Into<String>,
        provider: Arc<dyn Provider>,
        prompt_tokens: Option<u32>,
    ) -> &mut Self {
        self.any_of.insert(
            provider_name.into(),
            Entry {
                provider,
                prompt_tokens,
            },
        );
        self
    }

    /// Adds every model of `other` (a name in both takes `other`'s entry).
    pub fn extend(&mut self, other: &ModelCatalog) -> &mut Self {
        self.exact
            .extend(other.exact.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.any_of
            .extend(other.any_of.iter().map(|(k, v)| (k.clone(), v.clone())));
        self
    }

    fn entry(&self, model: &str) -> Option<&Entry> {
        self.exact.get(model).or_else(|| {
            let (provider, id) = model.split_once('/')?;
            (!id.is_empty()).then_some(())?;
            self.any_of.get(provider)
        })
    }

    /// The provider serving `model`, if any.
    pub fn resolve(&self, model: &str) -> Option<&Arc<dyn Provider>> {
        self.entry(model).map(|e| &e.provider)
    }

    /// Whether a worker may be created with `model`.
    pub fn serves(&self, model: &str) -> bool {
        self.entry(model).is_some()
    }

    /// Model names for clients, sorted: exact names, and `name/*` for providers that
    /// accept any model id.
    pub fn models(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .exact
            .keys()
            .cloned()
            .chain(self.any_of.keys().map(|p| format!("{p}/*")))
            .collect();
        names.sort();
        names
    }

    /// Prompt-token budgets for the runtime core (exact names and `name/*` patterns).
    pub fn budgets(&self) -> Vec<ModelBudget> {
        let exact = self.exact.iter().filter_map(|(model, e)| {
            e.prompt_tokens.map(|prompt_tokens| ModelBudget {
                model: model.clone(),
                prompt_tokens,
            })
        });
        let any = self.any_of.iter().filter_map(|(provider, e)| {
            e.prompt_tokens.map(|prompt_tokens| ModelBudget {
                model: format!("{provider}/*"),
                prompt_tokens,
            })
        });
        exact.chain(any).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.any_of.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripted::ScriptedModel;

    #[test]
    fn exact_names_win_over_any_model_of_a_provider() {
        let a: Arc<dyn Provider> = Arc::new(ScriptedModel::default());
        let b: Arc<dyn Provider> = Arc::new(ScriptedModel::default());
        let mut c = ModelCatalog::new();
        c.add("scripted", a.clone(), None)
            .add("openai/small", a.clone(), Some(10))
            .add_any_of("openai", b.clone(), Some(100));
        assert!(Arc::ptr_eq(c.resolve("openai/small").unwrap(), &a));
        assert!(Arc::ptr_eq(c.resolve("openai/gpt-4o").unwrap(), &b));
        assert!(c.resolve("openai/").is_none());
        assert!(c.resolve("openai").is_none());
        assert!(c.resolve("other/x").is_none());
        assert!(c.serves("scripted"));
        assert_eq!(c.models(), ["openai/*", "openai/small", "scripted"]);
        assert_eq!(
            c.budgets(),
            vec![
                ModelBudget {
                    model: "openai/small".into(),
                    prompt_tokens: 10
                },
                ModelBudget {
                    model: "openai/*".into(),
                    prompt_tokens: 100
                },
            ]
        );
    }
}
