//! [`LiveEvents`]: the live envelopes of every source a stream covers, merged.

use std::sync::Arc;

use futures_util::stream::{BoxStream, SelectAll};
use futures_util::{FutureExt, StreamExt};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use yoi_protocol::Envelope;

use super::session::Live;
use super::subscription::Subscription;

/// A live item tagged with the index of its source.
type Tagged = (usize, Live);

/// Live envelopes of one source, or of several merged (each tagged with its index).
pub(crate) enum LiveEvents {
    One(Subscription),
    Many(SelectAll<BoxStream<'static, Tagged>>),
}

fn live(item: Result<Arc<Envelope>, RecvError>) -> Live {
    match item {
        Ok(env) => Live::Event(env),
        Err(RecvError::Lagged(_)) => Live::Skipped,
        Err(RecvError::Closed) => Live::Closed,
    }
}

impl LiveEvents {
    pub(crate) fn new(receivers: Vec<Subscription>) -> LiveEvents {
        if receivers.len() == 1 {
            let rx = receivers.into_iter().next().expect("one receiver");
            return LiveEvents::One(rx);
        }
        let streams = receivers.into_iter().enumerate().map(|(i, rx)| {
            futures_util::stream::unfold(rx, move |mut rx| async move {
                let item = live(rx.recv().await);
                Some(((i, item), rx))
            })
            .boxed()
        });
        LiveEvents::Many(futures_util::stream::select_all(streams))
    }

    /// An item that is already waiting, if any.
    pub(crate) fn try_next(&mut self) -> Option<Tagged> {
        match self {
            LiveEvents::One(rx) => match rx.try_recv() {
                Ok(env) => Some((0, Live::Event(env))),
                Err(TryRecvError::Lagged(_)) => Some((0, Live::Skipped)),
                Err(TryRecvError::Closed) => Some((0, Live::Closed)),
                Err(TryRecvError::Empty) => None,
            },
            // Polled once without waiting; the next `next()` registers the real waker.
            LiveEvents::Many(all) => all.next().now_or_never().flatten(),
        }
    }

    /// The next item. Cancel-safe: nothing is lost when the future is dropped. With no
    /// source at all it never resolves.
    pub(crate) async fn next(&mut self) -> Tagged {
        match self {
            LiveEvents::One(rx) => (0, live(rx.recv().await)),
            LiveEvents::Many(all) if all.is_empty() => std::future::pending().await,
            LiveEvents::Many(all) => all.next().await.unwrap_or((0, Live::Closed)),
        }
    }
}
