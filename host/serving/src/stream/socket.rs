//! [`Socket`]: a stream's WebSocket, where every write must make progress in time.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{FutureExt, SinkExt, StreamExt};

use super::session::FromClient;

/// The write failed or timed out: the client is gone (or accepted nothing for the write
/// timeout); nothing more is sent.
#[derive(Debug)]
pub(crate) struct Broken;

/// Every write operation (a frame, a flush, a ping) must make progress within the write
/// timeout; one that fails or times out breaks the socket, and nothing more is sent on
/// it.
pub(crate) struct Socket {
    ws: WebSocket,
    write_timeout: Duration,
    broken: bool,
}

impl Socket {
    pub(crate) fn new(ws: WebSocket, write_timeout: Duration) -> Self {
        Socket {
            ws,
            write_timeout,
            broken: false,
        }
    }

    /// Writes (and empties) `frames` with one flush.
    pub(crate) async fn write(&mut self, frames: &mut Vec<Utf8Bytes>) -> Result<(), Broken> {
        if self.broken {
            return Err(Broken);
        }
        for text in frames.drain(..) {
            let feed = self.ws.feed(Message::Text(text));
            timed(&mut self.broken, self.write_timeout, feed).await?;
        }
        self.flush().await
    }

    /// Sends what the protocol layer queued (a pong) and what was written.
    pub(crate) async fn flush(&mut self) -> Result<(), Broken> {
        timed(&mut self.broken, self.write_timeout, self.ws.flush()).await
    }

    pub(crate) async fn ping(&mut self) -> Result<(), Broken> {
        let ping = self.ws.send(Message::Ping(Default::default()));
        timed(&mut self.broken, self.write_timeout, ping).await
    }

    /// The next message from the client. Cancel-safe.
    pub(crate) async fn recv(&mut self) -> FromClient {
        heard(self.ws.next().await)
    }

    /// A message the client already sent, if any (without waiting).
    pub(crate) fn try_recv(&mut self) -> Option<FromClient> {
        self.ws.next().now_or_never().map(heard)
    }

    /// Sends the closing frame (if any) and a close frame (with `code`, if any), then
    /// closes; all within the write timeout.
    pub(crate) async fn close(mut self, frame: Option<Utf8Bytes>, code: Option<u16>) {
        if self.broken {
            return;
        }
        let ws = &mut self.ws;
        let _ = tokio::time::timeout(self.write_timeout, async move {
            if let Some(text) = frame {
                ws.send(Message::Text(text)).await?;
            }
            let close = code.map(|code| CloseFrame {
                code,
                reason: Utf8Bytes::default(),
            });
            ws.send(Message::Close(close)).await?;
            ws.close().await
        })
        .await;
    }
}

/// Runs one write operation on the socket: at once when the socket takes it (the common
/// case, with no timer and no clock read), else within `timeout`. A failure or a timeout
/// breaks the socket.
async fn timed(
    broken: &mut bool,
    timeout: Duration,
    op: impl Future<Output = Result<(), axum::Error>>,
) -> Result<(), Broken> {
    let mut op = std::pin::pin!(op);
    let written = match op.as_mut().now_or_never() {
        Some(done) => done.is_ok(),
        None => matches!(tokio::time::timeout(timeout, op).await, Ok(Ok(()))),
    };
    if !written {
        *broken = true;
        return Err(Broken);
    }
    Ok(())
}

/// What a message from the client means for the stream.
fn heard(message: Option<Result<Message, axum::Error>>) -> FromClient {
    match message {
        Some(Ok(Message::Ping(_) | Message::Pong(_))) => FromClient::Control,
        Some(Ok(Message::Text(_) | Message::Binary(_))) => FromClient::Data,
        Some(Ok(Message::Close(_)) | Err(_)) | None => FromClient::Gone,
    }
}
