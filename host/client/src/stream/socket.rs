//! [`EventStream`]: the socket loop around [`Resume`].

use std::fmt;

use futures_util::StreamExt;
use reqwest::Url;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until, timeout, timeout_at};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use yoi_protocol::Frame;

use super::item::{ConnState, Disconnect, StreamCursor, StreamItem};
use super::resume::{Next, Resume, Step};
use crate::error::{ClientError, describe};
use crate::options::ClientOptions;

/// Where a stream connects: the `ws://` URL of the stream (without `?cursor=`), the
/// `Authorization` header and the limits.
#[derive(Clone)]
pub(crate) struct StreamTarget {
    pub(crate) url: Url,
    pub(crate) auth: HeaderValue,
    pub(crate) options: ClientOptions,
}

/// A stream of one worker's events, of a runtime's or of every runtime's (the host's
/// multiplexed stream), that reconnects by itself.
///
/// [`next`](EventStream::next) yields the server's frames in order and exactly once, and
/// [`ConnState`]s when the connection changes. After any disconnect it waits (exponential
/// backoff with jitter, see [`StreamOptions`](crate::StreamOptions)) and reconnects with
/// the cursor of the last frame it yielded, dropping events it already yielded; a
/// `lagged` frame reconnects at once. A permanent error (`worker_not_found`,
/// `cursor_malformed`, `unauthorized`, an undecodable frame, ...) ends it with
/// [`ConnState::GaveUp`], after which `next` returns `None`.
///
/// Nothing is read ahead: a frame is read from the socket when `next` is called, so a
/// slow consumer holds the server back (which eventually answers `lagged`; the stream
/// then resumes from its cursor) instead of filling memory. `next` is cancel-safe: a
/// `select!` that drops it loses no frame.
pub struct EventStream<C: StreamCursor> {
    target: StreamTarget,
    resume: Resume<C>,
    phase: Phase,
}

enum Phase {
    /// Nothing happened yet: announce [`ConnState::Connecting`].
    Start,
    Connect,
    /// Reconnect at this instant.
    Wait(Instant),
    Open(Box<Open>),
    Done,
}

struct Open {
    ws: WebSocketStream<TcpStream>,
    /// When the server was last heard from (any message, pings included).
    heard: Instant,
}

impl<C: StreamCursor> EventStream<C> {
    pub(crate) fn new(target: StreamTarget, start: Option<C>) -> Self {
        let resume = Resume::new(start, &target.options.stream, rand::random());
        EventStream {
            target,
            resume,
            phase: Phase::Start,
        }
    }

    /// The cursor the stream would resume from: that of the last event or snapshot it
    /// yielded (or the one it was started with).
    pub fn cursor(&self) -> Option<&C> {
        self.resume.resume_from()
    }

    /// The next frame or connection state; `None` once the stream gave up.
    pub async fn next(&mut self) -> Option<StreamItem<C>> {
        loop {
            match &mut self.phase {
                Phase::Done => return None,
                Phase::Start => {
                    self.phase = Phase::Connect;
                    return Some(StreamItem::Status(ConnState::Connecting));
                }
                Phase::Wait(at) => {
                    sleep_until(*at).await;
                    self.phase = Phase::Connect;
                }
                Phase::Connect => {
                    let cursor = self.resume.resume_from().map(StreamCursor::encode);
                    match connect(&self.target, cursor.as_deref()).await {
                        Ok(ws) => {
                            self.phase = Phase::Open(Box::new(Open {
                                ws,
                                heard: Instant::now(),
                            }));
                            return Some(StreamItem::Status(ConnState::Connected));
                        }
                        Err(e) => return Some(self.disconnected(Disconnect::Failed(e))),
                    }
                }
                Phase::Open(open) => {
                    let idle = self.target.options.stream.idle_timeout;
                    let message = match timeout_at(open.heard + idle, open.ws.next()).await {
                        Ok(message) => message,
                        Err(_) => {
                            let e = ClientError::Timeout {
                                message: format!(
                                    "the stream brought nothing, not even a ping, for {idle:?}"
                                ),
                            };
                            return Some(self.disconnected(Disconnect::Failed(e)));
                        }
                    };
                    open.heard = Instant::now();
                    let frame = match message {
                        Some(Ok(Message::Text(text))) => {
                            serde_json::from_str::<Frame<C>>(text.as_str()).map_err(|e| {
                                ClientError::bad_response(format!(
                                    "a stream frame does not decode: {e}"
                                ))
                            })
                        }
                        Some(Ok(Message::Binary(_))) => Err(ClientError::bad_response(
                            "the server sent a binary message; streams carry JSON text",
                        )),
                        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {
                            continue;
                        }
                        Some(Ok(Message::Close(_)))
                        | None
                        | Some(Err(tungstenite::Error::ConnectionClosed)) => {
                            return Some(self.disconnected(Disconnect::Closed));
                        }
                        Some(Err(e)) => Err(ws_error(e)),
                    };
                    let step = match frame {
                        Ok(frame) => self.resume.on_frame(frame),
                        Err(e) => Step::Disconnect(Disconnect::Failed(e)),
                    };
                    match step {
                        Step::Deliver(frame) => return Some(StreamItem::Frame(frame)),
                        Step::Skip => continue,
                        Step::Disconnect(reason) => return Some(self.disconnected(reason)),
                    }
                }
            }
        }
    }

    /// Drops the connection (if any) and decides what comes next.
    fn disconnected(&mut self, reason: Disconnect) -> StreamItem<C> {
        let state = match self.resume.on_disconnect(&reason) {
            Next::Retry { attempt, after } => {
                tracing::debug!(attempt, ?after, %reason, "stream disconnected; reconnecting");
                self.phase = Phase::Wait(Instant::now() + after);
                ConnState::Reconnecting {
                    attempt,
                    after,
                    reason,
                }
            }
            Next::GiveUp(error) => {
                tracing::debug!(%error, "stream ended");
                self.phase = Phase::Done;
                ConnState::GaveUp(error)
            }
        };
        StreamItem::Status(state)
    }
}

impl<C: StreamCursor> fmt::Debug for EventStream<C> {
    /// Without the URL or the token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream")
            .field("cursor", &self.cursor())
            .finish_non_exhaustive()
    }
}

/// Opens the stream's WebSocket: TCP (connect timeout), then the handshake with the
/// bearer token (request timeout).
async fn connect(
    target: &StreamTarget,
    cursor: Option<&str>,
) -> Result<WebSocketStream<TcpStream>, ClientError> {
    let mut url = target.url.clone();
    if let Some(cursor) = cursor {
        url.query_pairs_mut().append_pair("cursor", cursor);
    }
    let options = &target.options;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| ClientError::config("the server URL has no port"))?;
    let tcp = match url.host() {
        Some(url::Host::Domain(name)) => {
            timeout(options.connect_timeout, TcpStream::connect((name, port))).await
        }
        Some(url::Host::Ipv4(ip)) => {
            timeout(options.connect_timeout, TcpStream::connect((ip, port))).await
        }
        Some(url::Host::Ipv6(ip)) => {
            timeout(options.connect_timeout, TcpStream::connect((ip, port))).await
        }
        None => return Err(ClientError::config("the server URL has no host")),
    };
    let tcp = tcp
        .map_err(|_| ClientError::Timeout {
            message: format!("connecting took longer than {:?}", options.connect_timeout),
        })?
        .map_err(|e| ClientError::Network {
            message: describe(&e),
        })?;
    // Frames are small and come in bursts; do not hold them for delayed ACKs.
    let _ = tcp.set_nodelay(true);

    let mut request = url.as_str().into_client_request().map_err(|e| {
        ClientError::config(format!("cannot build the stream request: {}", describe(&e)))
    })?;
    request
        .headers_mut()
        .insert(AUTHORIZATION, target.auth.clone());
    let config = WebSocketConfig::default()
        .max_message_size(Some(options.stream.max_frame_bytes))
        .max_frame_size(Some(options.stream.max_frame_bytes));
    let handshake = tokio_tungstenite::client_async_with_config(request, tcp, Some(config));
    let (ws, _) = timeout(options.request_timeout, handshake)
        .await
        .map_err(|_| ClientError::Timeout {
            message: format!(
                "the stream handshake took longer than {:?}",
                options.request_timeout
            ),
        })?
        .map_err(ws_error)?;
    Ok(ws)
}

/// A WebSocket failure as a [`ClientError`]: a refused upgrade keeps the server's typed
/// error; nothing names the URL.
fn ws_error(e: tungstenite::Error) -> ClientError {
    match e {
        tungstenite::Error::Http(response) if response.status().as_u16() >= 400 => {
            let body = response.body().as_deref().unwrap_or_default();
            ClientError::from_status(response.status().as_u16(), body)
        }
        tungstenite::Error::Http(response) => ClientError::bad_response(format!(
            "the server answered the stream's upgrade with HTTP {}",
            response.status().as_u16()
        )),
        tungstenite::Error::Io(e) => ClientError::Network {
            message: describe(&e),
        },
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            ClientError::Network {
                message: "the connection closed".into(),
            }
        }
        tungstenite::Error::Protocol(e) => ClientError::Network {
            message: format!("WebSocket protocol error: {e}"),
        },
        tungstenite::Error::Capacity(e) => {
            ClientError::bad_response(format!("a stream frame is too large: {e}"))
        }
        tungstenite::Error::Utf8(_) => ClientError::bad_response("a stream frame is not UTF-8"),
        // URL, TLS and HTTP format errors can quote the request; say only what kind.
        tungstenite::Error::Url(_) => ClientError::config("the stream URL is not usable"),
        tungstenite::Error::Tls(_) => ClientError::config("TLS is not supported"),
        tungstenite::Error::HttpFormat(_) => ClientError::Network {
            message: "malformed HTTP in the WebSocket handshake".into(),
        },
        _ => ClientError::Network {
            message: "the WebSocket connection failed".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use crate::options::ClientOptions;
    use crate::transport::Transport;
    use yoi_protocol::{Cursor, HostCursor};

    /// Clients run streams in spawned tasks: the stream and `next`'s future must be `Send`.
    #[test]
    fn streams_and_their_futures_are_send() {
        fn send<T: Send>(_: &T) {}
        let transport = Transport::new("http://h:1", "t", ClientOptions::default()).unwrap();
        let mut one = transport.stream::<Cursor>(&["ws"], None);
        send(&one.next());
        send(&one);
        let mut all = transport.stream::<HostCursor>(&["ws"], None);
        send(&all.next());
        send(&all);
    }
}
