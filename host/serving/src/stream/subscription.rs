//! [`Subscription`]: a stream's place in one source's live envelopes.

use std::sync::{Arc, Weak};

use tokio::sync::broadcast::{
    self,
    error::{RecvError, TryRecvError},
};
use yoi_protocol::Envelope;

/// A source's live envelopes as one stream receives them, from a broadcast of a fixed
/// number of slots (a stream further behind than the slots is `Lagged`).
///
/// - [`Subscription::Shared`]: the broadcast carries the envelopes. An embedded runtime's
///   log does this: its slots hold the newest `log.broadcast_capacity` envelopes, which
///   the log's window (`log.window_capacity`, larger by default) holds anyway, so the
///   broadcast keeps no event bytes of its own alive; the window is bounded in events
///   and each event by the runtime's own limits (the input size, the model's answer).
/// - [`Subscription::Weak`]: the broadcast carries weak references to what the source's
///   window owns. A remote runtime's events come from another process, each up to the
///   upstream frame limit, so only its window, bounded in bytes, may keep them: an
///   envelope the window dropped before this stream took it is gone for the stream
///   exactly as if the broadcast had overwritten it (`Lagged`), and the stream resumes
///   from its position by replay, without a gap or a duplicate.
pub enum Subscription {
    Shared(broadcast::Receiver<Arc<Envelope>>),
    Weak(broadcast::Receiver<Weak<Envelope>>),
}

impl Subscription {
    /// The next envelope. Cancel-safe, like the broadcast's own `recv`.
    pub async fn recv(&mut self) -> Result<Arc<Envelope>, RecvError> {
        match self {
            Subscription::Shared(rx) => rx.recv().await,
            Subscription::Weak(rx) => {
                let weak = rx.recv().await?;
                weak.upgrade().ok_or(RecvError::Lagged(1))
            }
        }
    }

    /// An envelope that is already waiting, if any.
    pub fn try_recv(&mut self) -> Result<Arc<Envelope>, TryRecvError> {
        match self {
            Subscription::Shared(rx) => rx.try_recv(),
            Subscription::Weak(rx) => {
                let weak = rx.try_recv()?;
                weak.upgrade().ok_or(TryRecvError::Lagged(1))
            }
        }
    }
}

impl From<broadcast::Receiver<Arc<Envelope>>> for Subscription {
    fn from(rx: broadcast::Receiver<Arc<Envelope>>) -> Self {
        Subscription::Shared(rx)
    }
}

impl From<broadcast::Receiver<Weak<Envelope>>> for Subscription {
    fn from(rx: broadcast::Receiver<Weak<Envelope>>) -> Self {
        Subscription::Weak(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yoi_protocol::Event;

    fn env(seq: u64) -> Arc<Envelope> {
        Arc::new(Envelope {
            seq,
            worker_id: None,
            at_ms: 0,
            event: Event::TextDelta {
                run_id: "r".into(),
                text: "x".into(),
            },
        })
    }

    #[tokio::test]
    async fn a_weak_envelope_dropped_before_it_is_taken_is_lagged() {
        let (tx, rx) = broadcast::channel::<Weak<Envelope>>(8);
        let mut sub = Subscription::from(rx);
        let kept = env(1);
        let dropped = env(2);
        let after = env(3);
        for e in [&kept, &dropped, &after] {
            tx.send(Arc::downgrade(e)).unwrap();
        }
        drop(dropped);
        assert_eq!(sub.recv().await.unwrap().seq, 1);
        assert_eq!(sub.try_recv().unwrap_err(), TryRecvError::Lagged(1));
        assert_eq!(sub.recv().await.unwrap().seq, 3);
        assert_eq!(sub.try_recv().unwrap_err(), TryRecvError::Empty);
        drop(tx);
        assert_eq!(sub.recv().await.unwrap_err(), RecvError::Closed);
    }
}
