//! [`serve`]: the accept loop every yoi server runs, with a cap on connections and a
//! deadline for each request's headers, so half-open or slow clients neither exhaust
//! file descriptors nor hold up shutdown.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::shutdown::ShutdownSignal;

/// Pause after a failed `accept` (out of file descriptors, say) before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Limits of the connection layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections served at once; more wait in the listen backlog. A WebSocket stream
    /// stops counting once upgraded (streams have their own limits).
    pub max_connections: usize,
    /// A connection must deliver a request's headers within this; an idle keep-alive
    /// connection is closed after it.
    pub header_read_timeout: Duration,
    /// A request must be answered within this (see [`crate::layers::around`]).
    pub request_timeout: Duration,
}

/// Serves `app` on `listener` until `shutdown`, then stops accepting, gives every
/// connection up to `drain` to finish the request in flight, closes what is left, and
/// returns. Every connection is `TCP_NODELAY`: stream frames are small and must not wait
/// for the client's delayed ACK (up to 40 ms on Linux).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    mut shutdown: ShutdownSignal,
    drain: Duration,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut connections = JoinSet::new();
    loop {
        let permit = tokio::select! {
            biased;
            _ = shutdown.triggered() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let tcp = tokio::select! {
            biased;
            _ = shutdown.triggered() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on a connection");
        }
        let service = TowerToHyperService::new(app.clone());
        let mut stop = shutdown.clone();
        let header_read_timeout = limits.header_read_timeout;
        connections.spawn(async move {
            let _permit = permit;
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades();
            let mut conn = std::pin::pin!(conn);
            let served = tokio::select! {
                served = conn.as_mut() => served,
                _ = stop.triggered() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = served {
                // Timeouts, resets and clients leaving mid-request: routine.
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let drained = tokio::time::timeout(drain, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "connections did not finish within the grace period; closing them"
        );
        connections.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shutdown::Shutdown;
    use axum::routing::get;
    use futures_util::FutureExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// Guards against hangs only.
    const PATIENCE: Duration = Duration::from_secs(60);

    async fn start(limits: HttpLimits) -> (std::net::SocketAddr, Shutdown) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/", get(|| async { "ok" }));
        let shutdown = Shutdown::new();
        let signal = shutdown.signal();
        tokio::spawn(serve(listener, app, limits, signal, Duration::from_secs(1)));
        (addr, shutdown)
    }

    async fn request(tcp: &mut TcpStream) -> String {
        tcp.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn a_client_that_does_not_finish_its_headers_is_disconnected() {
        let (addr, _shutdown) = start(HttpLimits {
            max_connections: 8,
            header_read_timeout: Duration::from_millis(100),
            request_timeout: Duration::from_secs(5),
        })
        .await;
        let mut half_open = TcpStream::connect(addr).await.unwrap();
        half_open
            .write_all(b"GET / HTTP/1.1\r\nhost:")
            .await
            .unwrap();
        let mut rest = Vec::new();
        tokio::time::timeout(PATIENCE, half_open.read_to_end(&mut rest))
            .await
            .expect("the server closes the connection")
            .ok();
        // Whatever it said (a 408 or nothing), the connection is over; others are served.
        let mut fine = TcpStream::connect(addr).await.unwrap();
        assert!(request(&mut fine).await.starts_with("HTTP/1.1 200"));
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_wait_for_a_free_slot() {
        let (addr, _shutdown) = start(HttpLimits {
            max_connections: 1,
            header_read_timeout: Duration::from_secs(600),
            request_timeout: Duration::from_secs(5),
        })
        .await;
        // Holds the only slot with half a request.
        let mut holder = TcpStream::connect(addr).await.unwrap();
        holder.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let mut waiting = TcpStream::connect(addr).await.unwrap();
        let mut answer = Box::pin(async move { request(&mut waiting).await });
        // Not served while the slot is taken (it cannot be, however long this waits).
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(answer.as_mut().now_or_never().is_none());
        drop(holder);
        let answer = tokio::time::timeout(PATIENCE, answer)
            .await
            .expect("served once the slot is free");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
}
