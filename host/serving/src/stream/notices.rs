//! [`Notices`]: the availability of every source a stream covers, merged.

use futures_util::StreamExt;
use futures_util::stream::{BoxStream, SelectAll};
use tokio::sync::watch;

use super::source::Availability;

/// Availability changes tagged with the index of their source. Sources that are always
/// available contribute nothing.
pub(crate) struct Notices(SelectAll<BoxStream<'static, (usize, Availability)>>);

impl Notices {
    /// Watches the given receivers (by source index); each one's current value comes
    /// first, so a stream opened during an outage hears of it.
    pub(crate) fn new(
        watches: impl IntoIterator<Item = Option<watch::Receiver<Availability>>>,
    ) -> Self {
        let streams = watches
            .into_iter()
            .enumerate()
            .filter_map(|(i, rx)| Some((i, rx?)))
            .map(|(i, mut rx)| {
                rx.mark_changed();
                futures_util::stream::unfold(rx, move |mut rx| async move {
                    rx.changed().await.ok()?;
                    let now = rx.borrow_and_update().clone();
                    Some(((i, now), rx))
                })
                .boxed()
            });
        Notices(futures_util::stream::select_all(streams))
    }

    /// The next change. Cancel-safe. Never resolves when no source can become
    /// unavailable (or every watched source is gone).
    pub(crate) async fn next(&mut self) -> (usize, Availability) {
        if self.0.is_empty() {
            return std::future::pending().await;
        }
        match self.0.next().await {
            Some(change) => change,
            None => std::future::pending().await,
        }
    }
}
