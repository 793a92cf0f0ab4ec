//! The host's hardening, through its sockets and files: the data dir and everything in
//! it that holds a secret or a conversation is private to its owner; hostile cursors
//! (garbage, huge, negative, too many parts) are typed errors; an oversized message from
//! a client ends only its own stream.

mod common;

use common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;
use yoi_protocol::{Cursor, HostCursor};

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn the_data_dir_and_the_stores_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("fresh").join("yoi");
    let dir = data.clone();
    let mut h = start_with(move |c| c.data_dir = Some(dir)).await;
    let w = h.create_worker("w").await;
    h.input(&w, "hello").await;
    h.wait_idle(&w, 1).await;
    h.shutdown().await;

    let mode = |p: &std::path::Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let runtime = data.join("runtimes").join("local");
    for dir in [&data, &runtime] {
        assert_eq!(mode(dir), 0o700, "{}", dir.display());
    }
    let mut files = vec![data.join("host.token")];
    for entry in std::fs::read_dir(&runtime).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("events.db")
        {
            files.push(path);
        }
    }
    assert!(
        files.len() >= 3,
        "the token, the store and its lock: {files:?}"
    );
    for file in files {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_cursors_are_typed_errors() {
    let h = start().await;
    let w = h.create_worker("w").await;
    let epoch = {
        let mut ws = h.ws(&h.worker_stream(&w, None)).await;
        Cursor::decode(ws.frame().await["cursor"].as_str().unwrap())
            .unwrap()
            .epoch
    };
    let many_parts: String = (0..=HostCursor::MAX_PARTS)
        .map(|i| format!("~r{i}.{}", Cursor::new(1, 1).encode()))
        .collect();
    let huge = "c1".to_string() + &"f".repeat(60_000);
    let cases = [
        // (path, the error frame's code)
        (
            h.worker_stream(&w, Some("c1-0000000000000000000000000000001")),
            "cursor_malformed",
        ),
        (h.worker_stream(&w, Some(&huge)), "cursor_malformed"),
        (h.worker_stream(&w, Some("c1%00")), "cursor_malformed"),
        (
            h.worker_stream(&w, Some(&Cursor::new(epoch, u64::MAX).encode())),
            "cursor_ahead",
        ),
        (
            h.all_stream(Some(&format!("h1{many_parts}"))),
            "cursor_malformed",
        ),
        (h.all_stream(Some(&huge)), "cursor_malformed"),
        (
            h.all_stream(Some(&format!(
                "h1~local.{}",
                Cursor::new(epoch, u64::MAX).encode()
            ))),
            "cursor_ahead",
        ),
    ];
    for (path, code) in cases {
        let mut ws = h.ws(&path).await;
        let f = ws.frame().await;
        assert_eq!(
            (f["type"].as_str(), f["code"].as_str()),
            (Some("error"), Some(code)),
            "{}: {f}",
            &path[..path.len().min(120)]
        );
        ws.expect_close().await;
    }
    // A host cursor carrying as many parts as allowed is carried, not refused.
    let carried: String = (1..HostCursor::MAX_PARTS)
        .map(|i| format!("~r{i:04}.{}", Cursor::new(1, 1).encode()))
        .collect();
    let mut ws = h.ws(&h.all_stream(Some(&format!("h1{carried}")))).await;
    let f = ws.frame().await;
    assert_ne!(f["type"], "error", "{f}");
    // The host serves on.
    h.input(&w, "hi").await;
    h.wait_idle(&w, 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_client_message_ends_only_its_stream() {
    let h = start().await;
    let w = h.create_worker("w").await;
    let mut rude = h.ws(&h.worker_stream(&w, None)).await;
    let mut polite = h.ws(&h.worker_stream(&w, None)).await;
    assert_eq!(rude.frame().await["type"], "snapshot");
    assert_eq!(polite.frame().await["type"], "snapshot");
    // Far beyond what a stream accepts from a client (64 KiB).
    let _ = rude
        .ws
        .send(Message::Text("x".repeat(4 << 20).into()))
        .await;
    while rude.frame_or_close().await.is_some() {}
    h.input(&w, "hi").await;
    let seen = polite.events_until(|f| back_to_idle(f, &w)).await;
    assert!(seen.iter().any(|f| f["event"]["type"] == "run_completed"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_under_another_host_name_is_refused() {
    // DNS rebinding: a page makes the browser send the host's own requests under the
    // page's name. The host on loopback answers only its own names and those configured.
    let h = start_with(|c| c.http.allowed_hosts = vec!["yoi.internal".into()]).await;
    let get = |host: &str| {
        h.http
            .get(format!("{}/runtimes", h.base))
            .bearer_auth(&h.token)
            .header("host", host)
            .send()
    };
    let refused = get("rebound.example:38700").await.unwrap();
    assert_eq!(refused.status().as_u16(), 421);
    let body = refused.text().await.unwrap();
    assert!(body.contains("\"forbidden\""), "{body}");
    assert!(!body.contains("rebound"), "the name is not echoed: {body}");
    for ok in ["localhost:38700", "127.0.0.1", "yoi.internal:1"] {
        let resp = get(ok).await.unwrap();
        let status = resp.status().as_u16();
        assert_eq!(status, 200, "{ok}: {}", resp.text().await.unwrap());
    }
}
