//! The picker: runtimes, their workers, and the form that creates a worker.

use yoi_protocol::{RuntimeInfo, WorkerInfo, WorkerSpec};

use crate::msg::Failure;

/// Something fetched from the host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Loadable<T> {
    #[default]
    Loading,
    Loaded(T),
    Failed(Failure),
}

/// Which list has the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Focus {
    #[default]
    Runtimes,
    Workers,
    Form,
}

#[derive(Debug, Clone, Default)]
pub struct Picker {
    pub runtimes: Loadable<Vec<RuntimeInfo>>,
    pub runtime_sel: usize,
    /// The runtime whose workers are listed.
    pub runtime: Option<String>,
    pub workers: Loadable<Vec<WorkerInfo>>,
    /// Row in the workers list; the last row is "new worker".
    pub worker_sel: usize,
    pub focus: Focus,
    pub form: Option<CreateForm>,
}

impl Picker {
    pub fn runtimes(&self) -> &[RuntimeInfo] {
        match &self.runtimes {
            Loadable::Loaded(r) => r,
            _ => &[],
        }
    }

    pub fn workers(&self) -> &[WorkerInfo] {
        match &self.workers {
            Loadable::Loaded(w) => w,
            _ => &[],
        }
    }

    pub fn selected_runtime(&self) -> Option<&RuntimeInfo> {
        self.runtimes().get(self.runtime_sel)
    }

    /// The runtime whose workers are listed.
    pub fn current_runtime(&self) -> Option<&RuntimeInfo> {
        let id = self.runtime.as_deref()?;
        self.runtimes().iter().find(|r| r.id == id)
    }

    /// The selected worker (`None` on the "new worker" row).
    pub fn selected_worker(&self) -> Option<&WorkerInfo> {
        self.workers().get(self.worker_sel)
    }

    pub fn move_selection(&mut self, down: bool) {
        let runtimes = self.runtimes().len();
        // The workers list has one more row: "new worker".
        let workers = self.workers().len() + 1;
        let (sel, len) = match self.focus {
            Focus::Runtimes => (&mut self.runtime_sel, runtimes),
            Focus::Workers => (&mut self.worker_sel, workers),
            Focus::Form => return,
        };
        if len == 0 {
            return;
        }
        *sel = if down {
            (*sel + 1).min(len - 1)
        } else {
            sel.saturating_sub(1)
        };
    }
}

/// The form for a new worker: a name, a model of the runtime, tools to enable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateForm {
    pub runtime_id: String,
    pub name: String,
    pub models: Vec<String>,
    pub model: usize,
    /// Every tool of the runtime and whether it is enabled.
    pub tools: Vec<(String, bool)>,
    /// The focused row: 0 name, 1 model, then one per tool.
    pub row: usize,
    pub submitting: bool,
    pub error: Option<Failure>,
}

impl CreateForm {
    /// A form for `runtime` with its first model and every tool enabled.
    pub fn new(runtime: &RuntimeInfo, name: String) -> Self {
        CreateForm {
            runtime_id: runtime.id.clone(),
            name,
            models: runtime.capabilities.models.clone(),
            model: 0,
            tools: runtime
                .capabilities
                .tools
                .iter()
                .map(|t| (t.clone(), true))
                .collect(),
            row: 0,
            submitting: false,
            error: None,
        }
    }

    pub fn rows(&self) -> usize {
        2 + self.tools.len()
    }

    pub fn next_row(&mut self, back: bool) {
        let n = self.rows();
        self.row = if back {
            (self.row + n - 1) % n
        } else {
            (self.row + 1) % n
        };
    }

    /// Left/Right on the model row cycles models; Space on a tool row toggles it.
    pub fn cycle_model(&mut self, back: bool) {
        let n = self.models.len();
        if self.row == 1 && n > 0 {
            self.model = if back {
                (self.model + n - 1) % n
            } else {
                (self.model + 1) % n
            };
        }
    }

    pub fn toggle_tool(&mut self) {
        if let Some(tool) = self.row.checked_sub(2).and_then(|i| self.tools.get_mut(i)) {
            tool.1 = !tool.1;
        }
    }

    /// The spec to send, or why the form is not complete. An empty name is sent as
    /// such: the runtime names the worker `worker-<n>`.
    pub fn spec(&self) -> Result<WorkerSpec, &'static str> {
        let name = self.name.trim();
        let Some(model) = self.models.get(self.model) else {
            return Err("this runtime offers no model");
        };
        Ok(WorkerSpec {
            name: name.to_string(),
            model: model.clone(),
            system_prompt: None,
            tools: self
                .tools
                .iter()
                .filter(|(_, on)| *on)
                .map(|(t, _)| t.clone())
                .collect(),
            max_steps: None,
            context_tokens: None,
            request_id: None,
        })
    }
}
