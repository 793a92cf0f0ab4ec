//! [`Shutdown`]: one switch that tells every part of a server to stop.

use tokio::sync::watch;

/// Flips once from running to shutting down. Cheap to clone; every clone is the same
/// switch.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Sender<bool>);

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown(watch::Sender::new(false))
    }
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the shutdown (again: no effect).
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Triggers the shutdown when the process gets SIGINT or SIGTERM.
    pub fn on_termination_signal(&self) {
        let shutdown = self.clone();
        tokio::spawn(async move {
            termination_signal().await;
            shutdown.trigger();
        });
    }

    /// A handle that waits for the shutdown.
    pub fn signal(&self) -> ShutdownSignal {
        ShutdownSignal(self.0.subscribe())
    }
}

/// Waits for a [`Shutdown`].
#[derive(Debug, Clone)]
pub struct ShutdownSignal(watch::Receiver<bool>);

impl ShutdownSignal {
    /// Resolves once the shutdown started (at once if it already has). Cancel-safe.
    pub async fn triggered(&mut self) {
        // The switch lives as long as any `Shutdown` clone; once all are gone nobody can
        // trigger it any more, so that counts as shut down too.
        let _ = self.0.wait_for(|down| *down).await;
    }
}

/// Resolves when the process gets SIGINT or SIGTERM (logged).
async fn termination_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => tracing::info!("SIGINT: shutting down"),
        _ = terminate => tracing::info!("SIGTERM: shutting down"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_signal_sees_the_trigger() {
        let shutdown = Shutdown::new();
        let mut early = shutdown.signal();
        assert!(!shutdown.is_triggered());
        let waiter = tokio::spawn(async move { early.triggered().await });
        shutdown.clone().trigger();
        waiter.await.unwrap();
        assert!(shutdown.is_triggered());
        // A signal taken afterwards resolves at once.
        shutdown.signal().triggered().await;
    }
}
