//! [`StreamSlots`]: how many streams may be open, in all and per client.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use yoi_protocol::ErrorCode;

use crate::error::ServeError;
use crate::metrics::Metrics;

/// Caps on open streams. Each stream holds a socket, a task and its place in a live
/// buffer; without a cap, clients could open them until the process runs out of file
/// descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// Streams open at once, in all.
    pub max_open: usize,
    /// Streams open at once per client (per token or principal).
    pub max_open_per_client: usize,
}

#[derive(Default)]
struct Open {
    total: usize,
    per_client: HashMap<String, usize>,
}

/// The open streams: counted against [`StreamLimits`], and awaited on shutdown.
pub(crate) struct StreamSlots {
    limits: StreamLimits,
    open: Mutex<Open>,
    all_closed: Notify,
    metrics: Arc<Metrics>,
}

/// One open stream; dropping it closes the slot.
pub(crate) struct StreamSlot {
    slots: Arc<StreamSlots>,
    client: String,
}

impl StreamSlots {
    pub(crate) fn new(limits: StreamLimits, metrics: Arc<Metrics>) -> Self {
        StreamSlots {
            limits,
            open: Mutex::new(Open::default()),
            all_closed: Notify::new(),
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for one more stream of `client`, or `429 limit_exceeded`.
    pub(crate) fn acquire(self: &Arc<Self>, client: &str) -> Result<StreamSlot, ServeError> {
        let mut open = self.lock();
        if open.total >= self.limits.max_open {
            return Err(ServeError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "the server has {} streams open, its limit; try again later",
                    self.limits.max_open
                ),
            ));
        }
        let mine = open.per_client.entry(client.to_string()).or_default();
        if *mine >= self.limits.max_open_per_client {
            return Err(ServeError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "this client has {} streams open, its limit; close one first",
                    self.limits.max_open_per_client
                ),
            ));
        }
        *mine += 1;
        open.total += 1;
        self.metrics.stream_opened();
        Ok(StreamSlot {
            slots: self.clone(),
            client: client.to_string(),
        })
    }

    pub(crate) fn open(&self) -> usize {
        self.lock().total
    }

    /// Resolves once no stream is open.
    pub(crate) async fn all_closed(&self) {
        loop {
            let closed = self.all_closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if self.open() == 0 {
                return;
            }
            closed.await;
        }
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let slots = &self.slots;
        slots.metrics.stream_closed();
        let mut open = slots.lock();
        if let Some(mine) = open.per_client.get_mut(&self.client) {
            *mine -= 1;
            if *mine == 0 {
                open.per_client.remove(&self.client);
            }
        }
        open.total -= 1;
        if open.total == 0 {
            slots.all_closed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn caps_in_all_and_per_client_then_frees_on_drop() {
        let metrics = Arc::new(Metrics::default());
        let limits = StreamLimits {
            max_open: 3,
            max_open_per_client: 2,
        };
        let slots = Arc::new(StreamSlots::new(limits, metrics.clone()));
        let a1 = slots.acquire("a").unwrap();
        let a2 = slots.acquire("a").unwrap();
        let refused = slots.acquire("a").err().unwrap();
        assert_eq!(refused.code, ErrorCode::LimitExceeded);
        assert_eq!(refused.status(), 429);
        let b1 = slots.acquire("b").unwrap();
        let refused = slots.acquire("c").err().unwrap();
        assert!(refused.message.contains("server"), "{refused}");
        assert_eq!(metrics.streams_open(), 3);
        drop(a1);
        let c1 = slots.acquire("c").unwrap();
        let waiter = {
            let slots = slots.clone();
            tokio::spawn(async move { slots.all_closed().await })
        };
        drop((a2, b1, c1));
        waiter.await.unwrap();
        assert_eq!(slots.open(), 0);
        assert_eq!(metrics.streams_open(), 0);
    }
}
