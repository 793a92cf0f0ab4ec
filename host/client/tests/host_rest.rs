//! Every REST call of the host API through `HostClient`, against a real in-process host:
//! the typed answers, the typed errors, and that neither the token nor the host's
//! address shows in an error.

mod common;

use std::time::Duration;

use common::*;
use yoi_client::{ClientError, ClientOptions, HostClient};
use yoi_protocol::{ErrorCode, Role, WorkerStatus};

#[tokio::test(flavor = "multi_thread")]
async fn every_call_answers_its_protocol_type() {
    let h = start().await;
    let client = h.client();

    let runtimes = client.runtimes().await.unwrap();
    assert_eq!(runtimes.len(), 1);
    assert_eq!(runtimes[0].id, "local");
    assert_eq!(runtimes[0].kind, "embedded");
    assert_eq!(runtimes[0].state, "ready");
    assert!(
        runtimes[0]
            .capabilities
            .models
            .contains(&"scripted".to_string())
    );

    let local = client.runtime("local");
    assert_eq!(local.info().await.unwrap(), runtimes[0]);
    assert_eq!(local.workers().await.unwrap(), vec![]);

    let created = local.create_worker(&spec("demo")).await.unwrap();
    assert_eq!(created.name, "demo");
    assert_eq!(created.status, WorkerStatus::Idle);
    assert_eq!(local.workers().await.unwrap(), vec![created.clone()]);
    assert_eq!(local.worker(&created.id).await.unwrap(), created);
    assert_eq!(local.info().await.unwrap().workers, 1);

    let run = local
        .send_input(&created.id, &input("hello"))
        .await
        .unwrap();
    assert!(run.starts_with("r_"), "{run}");
    wait_idle(&client, &created.id, 1).await;
    let transcript = local.transcript(&created.id).await.unwrap();
    assert_eq!(transcript.len(), 2, "{transcript:?}");
    assert_eq!(transcript[0].role, Role::User);
    assert_eq!(transcript[0].content, "hello");
    assert_eq!(transcript[1].role, Role::Assistant);
    assert_eq!(transcript[1].run_id, run);

    let stopped = local.stop(&created.id).await.unwrap();
    assert_eq!(stopped.status, WorkerStatus::Stopped);
    assert_eq!(
        local.worker(&created.id).await.unwrap().status,
        WorkerStatus::Stopped
    );

    local.delete_worker(&created.id).await.unwrap();
    assert_http(
        &local.worker(&created.id).await.unwrap_err(),
        404,
        ErrorCode::WorkerNotFound,
    );
    assert_eq!(local.workers().await.unwrap(), vec![]);
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_answers_the_run_and_busy_workers_refuse_input() {
    // A slow scripted model keeps the run in flight while the test acts on it.
    let h = start_with(|c| local_settings(c).scripted.token_delay_ms = 20).await;
    let client = h.client();
    let local = client.runtime("local");
    let w = local.create_worker(&spec("slow")).await.unwrap();
    let run = local
        .send_input(&w.id, &input("stream 10000"))
        .await
        .unwrap();

    let busy = local.send_input(&w.id, &input("again")).await.unwrap_err();
    assert_http(&busy, 409, ErrorCode::WorkerBusy);
    assert!(
        busy.to_string().contains(&run),
        "the message names the run: {busy}"
    );

    assert_eq!(local.cancel(&w.id).await.unwrap(), run);
    wait_idle(&client, &w.id, 1).await;
    let not_running = local.cancel(&w.id).await.unwrap_err();
    assert_http(&not_running, 409, ErrorCode::NotRunning);

    local.stop(&w.id).await.unwrap();
    let stopped = local.send_input(&w.id, &input("late")).await.unwrap_err();
    assert_http(&stopped, 409, ErrorCode::WorkerStopped);
}

#[tokio::test(flavor = "multi_thread")]
async fn not_found_and_invalid_requests_are_typed() {
    let h = start().await;
    let client = h.client();
    let local = client.runtime("local");
    for e in [
        local.worker("w_404").await.unwrap_err(),
        local.send_input("w_404", &input("hi")).await.unwrap_err(),
        local.cancel("w_404").await.unwrap_err(),
        local.stop("w_404").await.unwrap_err(),
        local.transcript("w_404").await.map(|_| ()).unwrap_err(),
        local.delete_worker("w_404").await.unwrap_err(),
    ] {
        assert_http(&e, 404, ErrorCode::WorkerNotFound);
    }
    let missing = client.runtime("nowhere");
    assert_http(
        &missing.info().await.unwrap_err(),
        404,
        ErrorCode::RuntimeNotFound,
    );
    assert_http(
        &missing.workers().await.map(|_| ()).unwrap_err(),
        404,
        ErrorCode::RuntimeNotFound,
    );
    // A worker id is one path segment, whatever it contains.
    assert_http(
        &local.worker("../../runtimes").await.unwrap_err(),
        404,
        ErrorCode::WorkerNotFound,
    );

    let mut bad = spec("x");
    bad.model = "no-such-model".into();
    let e = local.create_worker(&bad).await.unwrap_err();
    assert_http(&e, 400, ErrorCode::InvalidRequest);
    assert!(!e.is_transient());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_token_is_unauthorized_and_never_shown() {
    let h = start().await;
    let secret = "wrong-token-0123456789abcdef";
    let client = HostClient::new(&h.url(), secret).unwrap();
    let e = client.runtimes().await.unwrap_err();
    assert_http(&e, 401, ErrorCode::Unauthorized);
    assert_no_secret(&e, &[secret, &h.token, &h.addr.to_string()]);
    let e = client
        .runtime("local")
        .create_worker(&spec("x"))
        .await
        .unwrap_err();
    assert_http(&e, 401, ErrorCode::Unauthorized);
    assert_no_secret(&e, &[secret, &h.token, &h.addr.to_string()]);

    // The stream gives up at once: a wrong token is not worth retrying.
    let mut watch = Watch::new(client.all_stream(None));
    assert_eq!(
        watch.status().await,
        Some(yoi_client::ConnState::Connecting)
    );
    let Some(yoi_client::ConnState::GaveUp(e)) = watch.status().await else {
        panic!("expected the stream to give up");
    };
    assert_http(&e, 401, ErrorCode::Unauthorized);
    assert_no_secret(&e, &[secret, &h.token, &h.addr.to_string()]);
    assert_eq!(watch.status().await, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_and_silent_servers_are_typed_without_their_address() {
    // A port nothing listens on (bound, then released).
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let token = "secret-token-for-nobody";
    let client = HostClient::new(&format!("http://{addr}"), token).unwrap();
    let e = client.runtimes().await.unwrap_err();
    assert!(matches!(e, ClientError::Network { .. }), "{e:?}");
    assert_eq!(e.code(), ErrorCode::RuntimeUnavailable);
    assert!(e.is_transient());
    assert_no_secret(&e, &[token, &addr.to_string(), "127.0.0.1"]);

    // A server that accepts and never answers: the request timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (socket, _) = silent.accept().await.unwrap();
            held.push(socket);
        }
    });
    let options = ClientOptions {
        request_timeout: Duration::from_millis(300),
        ..ClientOptions::default()
    };
    let client = HostClient::with_options(&format!("http://{addr}"), token, options).unwrap();
    let e = client.runtimes().await.unwrap_err();
    assert!(matches!(e, ClientError::Timeout { .. }), "{e:?}");
    assert_eq!(e.code(), ErrorCode::Timeout);
    assert_no_secret(&e, &[token, &addr.to_string(), "127.0.0.1"]);

    // A stream's handshake is bounded the same way, and retried.
    let mut watch = Watch::new(client.all_stream(None));
    assert_eq!(
        watch.status().await,
        Some(yoi_client::ConnState::Connecting)
    );
    let Some(yoi_client::ConnState::Reconnecting {
        attempt: 1, reason, ..
    }) = watch.status().await
    else {
        panic!("a silent server is retried");
    };
    let yoi_client::Disconnect::Failed(e) = reason else {
        panic!("{reason:?}");
    };
    assert!(matches!(e, ClientError::Timeout { .. }), "{e:?}");
    held.abort();
}

fn assert_http(e: &ClientError, status: u16, code: ErrorCode) {
    assert!(
        matches!(e, ClientError::Http { .. }) && e.status() == Some(status) && e.code() == code,
        "expected HTTP {status} {code}, got {e:?}"
    );
}

fn assert_no_secret(e: &ClientError, secrets: &[&str]) {
    let text = format!("{e} {e:?}");
    for secret in secrets {
        assert!(!text.contains(secret), "{secret:?} leaked: {text}");
    }
}
