//! [`Loading`]: what a server loads after it started serving.
//!
//! A server binds and answers `/healthz` at once, while its runtimes restore their event
//! logs (and compile components) in the background; until they are loaded, `/readyz` and
//! the API answer `503 runtime_unavailable`.

use std::sync::OnceLock;

use tokio::sync::watch;
use yoi_protocol::ErrorCode;

use crate::error::ServeError;

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Loading,
    Ready,
    Failed(String),
}

/// A value being loaded: absent, then loaded (or failed) for good.
pub struct Loading<T> {
    value: OnceLock<T>,
    state: watch::Sender<State>,
    /// The answer's message until loaded ("the host is still loading its runtimes").
    not_ready: &'static str,
}

impl<T> Loading<T> {
    pub fn new(not_ready: &'static str) -> Self {
        Loading {
            value: OnceLock::new(),
            state: watch::Sender::new(State::Loading),
            not_ready,
        }
    }

    /// The value once loaded, else `503 runtime_unavailable`.
    pub fn get(&self) -> Result<&T, ServeError> {
        self.value
            .get()
            .ok_or_else(|| ServeError::new(ErrorCode::RuntimeUnavailable, self.not_ready))
    }

    /// Loading succeeded.
    pub fn set(&self, value: T) {
        if self.value.set(value).is_ok() {
            self.state.send_replace(State::Ready);
        }
    }

    /// Loading failed for good; `message` says why.
    pub fn fail(&self, message: String) {
        self.state.send_if_modified(|state| {
            let loading = *state == State::Loading;
            if loading {
                *state = State::Failed(message);
            }
            loading
        });
    }

    /// Why loading failed, if it did.
    pub fn failure(&self) -> Option<String> {
        match &*self.state.borrow() {
            State::Failed(message) => Some(message.clone()),
            State::Loading | State::Ready => None,
        }
    }

    /// Waits until loaded; errs with the failure.
    pub async fn ready(&self) -> Result<&T, String> {
        let mut state = self.state.subscribe();
        let state = state
            .wait_for(|s| *s != State::Loading)
            .await
            .map(|s| s.clone())
            .map_err(|_| "loading stopped".to_string())?;
        match state {
            State::Failed(message) => Err(message),
            State::Ready | State::Loading => self.get().map_err(|e| e.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_503_until_loaded_then_the_value() {
        let loading = std::sync::Arc::new(Loading::new("still loading"));
        let e = loading.get().err().unwrap();
        assert_eq!(
            (e.code, e.message.as_str()),
            (ErrorCode::RuntimeUnavailable, "still loading")
        );
        let waiter = {
            let loading = loading.clone();
            tokio::spawn(async move { loading.ready().await.copied() })
        };
        loading.set(7);
        assert_eq!(waiter.await.unwrap(), Ok(7));
        assert_eq!(loading.get().ok(), Some(&7));
        loading.fail("too late".into());
        assert_eq!(loading.failure(), None, "a loaded value stays loaded");

        let failed = Loading::<u8>::new("x");
        failed.fail("no component".into());
        assert_eq!(failed.ready().await, Err("no component".into()));
        assert_eq!(failed.failure().as_deref(), Some("no component"));
    }
}
