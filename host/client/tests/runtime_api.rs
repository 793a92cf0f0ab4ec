//! `RuntimeClient` and the stream loop against a scripted fake runtime: the runtime
//! API's paths, the bearer token, and how bad answers are typed (an older runtime's 405
//! and 501, garbage, oversized bodies and frames, scripted stream disconnects).
//!
//! These need no runtime component. Tests against a real `yoi-runtime serve` come with
//! it; the client side is the same code as the host's (`RuntimeApi`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use yoi_client::{
    ClientError, ClientOptions, ConnState, Disconnect, RuntimeClient, StreamItem, StreamOptions,
};
use yoi_protocol::{Cursor, ErrorCode, Frame, Input};

const TOKEN: &str = "fake-runtime-token";
const PATIENCE: Duration = Duration::from_secs(60);

/// One request the fake runtime received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    authorization: Option<String>,
    body: String,
}

/// A fake HTTP server: answers each request with `answer(method, target)` and records it.
async fn fake_http(
    answer: impl Fn(&str, &str) -> (u16, String) + Send + Sync + 'static,
) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (answer, log) = (Arc::new(answer), seen.clone());
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            let (answer, log) = (answer.clone(), log.clone());
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut read = BufReader::new(read);
                let mut line = String::new();
                read.read_line(&mut line).await.unwrap();
                let mut parts = line.split_whitespace();
                let method = parts.next().unwrap_or_default().to_string();
                let target = parts.next().unwrap_or_default().to_string();
                let (mut length, mut authorization) = (0, None);
                loop {
                    let mut header = String::new();
                    read.read_line(&mut header).await.unwrap();
                    let header = header.trim_end();
                    if header.is_empty() {
                        break;
                    }
                    let (name, value) = header.split_once(": ").unwrap();
                    match name.to_ascii_lowercase().as_str() {
                        "content-length" => length = value.parse().unwrap(),
                        "authorization" => authorization = Some(value.to_string()),
                        _ => {}
                    }
                }
                let mut body = vec![0; length];
                read.read_exact(&mut body).await.unwrap();
                let (status, text) = answer(&method, &target);
                log.lock().unwrap().push(Seen {
                    method,
                    target,
                    authorization,
                    body: String::from_utf8(body).unwrap(),
                });
                let head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    text.len()
                );
                let _ = write.write_all(head.as_bytes()).await;
                let _ = write.write_all(text.as_bytes()).await;
            });
        }
    });
    (url, seen)
}

fn worker_json(id: &str) -> String {
    format!(
        r#"{{"id":"{id}","name":"n","model":"scripted","system_prompt":null,"tools":[],"max_steps":8,"status":"idle","created_at_ms":1,"current_run":null,"run_count":0,"message_count":0,"usage":{{"input_tokens":0,"output_tokens":0}}}}"#
    )
}

#[tokio::test]
async fn the_runtime_api_paths_carry_the_token() {
    let epoch = 0xabc;
    let (url, seen) = fake_http(move |method, target| {
        let path = target.split('?').next().unwrap();
        let body = match (method, path) {
            ("GET", "/v1/runtime") => r#"{"runtime":{"id":"rt","kind":"embedded","state":"ready","workers":1,"capabilities":{"models":["scripted"],"tools":[],"limits":{"max_workers":1,"max_input_bytes":1,"default_max_steps":1},"streams":["worker","all"]}}}"#.to_string(),
            ("GET", "/v1/workers") => format!(r#"{{"workers":[{}]}}"#, worker_json("w_1")),
            ("POST", "/v1/workers") | ("GET", "/v1/workers/w_1") | ("POST", "/v1/workers/w_1/stop") => {
                format!(r#"{{"worker":{}}}"#, worker_json("w_1"))
            }
            ("POST", "/v1/workers/w_1/input") | ("POST", "/v1/workers/w_1/cancel") => {
                r#"{"run_id":"r_1"}"#.to_string()
            }
            ("GET", "/v1/workers/w_1/transcript") => r#"{"worker_id":"w_1","messages":[]}"#.to_string(),
            ("GET", "/v1/events") => format!(
                r#"{{"events":[{{"seq":8,"worker_id":"w_1","at_ms":3,"event":{{"type":"run_started","run_id":"r_1"}}}}],"cursor":"{}","more":false}}"#,
                Cursor::new(epoch, 8)
            ),
            _ => return (404, r#"{"error":{"code":"not_found","message":"no route"}}"#.into()),
        };
        (200, body)
    })
    .await;
    let rt = RuntimeClient::new(&url, TOKEN).unwrap();
    assert_eq!(rt.info().await.unwrap().id, "rt");
    assert_eq!(rt.workers().await.unwrap()[0].id, "w_1");
    let spec = yoi_protocol::WorkerSpec {
        name: "n".into(),
        model: "scripted".into(),
        system_prompt: None,
        tools: vec![],
        max_steps: None,
        context_tokens: None,
    };
    assert_eq!(rt.create_worker(&spec).await.unwrap().id, "w_1");
    assert_eq!(rt.worker("w_1").await.unwrap().id, "w_1");
    let input = Input {
        text: "hi".into(),
        request_id: Some("q1".into()),
    };
    assert_eq!(rt.send_input("w_1", &input).await.unwrap(), "r_1");
    assert_eq!(rt.cancel("w_1").await.unwrap(), "r_1");
    assert_eq!(rt.stop("w_1").await.unwrap().id, "w_1");
    assert!(rt.transcript("w_1").await.unwrap().is_empty());
    let page = rt
        .events(Some(Cursor::new(epoch, 7)), Some("w_1"), Some(5))
        .await
        .unwrap();
    assert_eq!(page.events[0].seq, 8);
    assert_eq!(page.cursor, Cursor::new(epoch, 8));
    assert!(!page.more);
    let e = rt.events(None, None, None).await;
    assert!(e.is_ok(), "{e:?}");

    let seen = seen.lock().unwrap().clone();
    let requests: Vec<String> = seen
        .iter()
        .map(|s| format!("{} {}", s.method, s.target))
        .collect();
    assert_eq!(
        requests,
        [
            "GET /v1/runtime".to_string(),
            "GET /v1/workers".into(),
            "POST /v1/workers".into(),
            "GET /v1/workers/w_1".into(),
            "POST /v1/workers/w_1/input".into(),
            "POST /v1/workers/w_1/cancel".into(),
            "POST /v1/workers/w_1/stop".into(),
            "GET /v1/workers/w_1/transcript".into(),
            format!(
                "GET /v1/events?after={}&worker=w_1&limit=5",
                Cursor::new(epoch, 7)
            ),
            "GET /v1/events".into(),
        ]
    );
    for s in &seen {
        assert_eq!(
            s.authorization.as_deref(),
            Some(&*format!("Bearer {TOKEN}"))
        );
    }
    assert_eq!(
        seen[2].body,
        r#"{"name":"n","model":"scripted","tools":[]}"#
    );
    assert_eq!(seen[4].body, r#"{"text":"hi","request_id":"q1"}"#);
    assert_eq!(seen[5].body, "", "cancel has no body");
}

#[tokio::test]
async fn bad_answers_are_typed() {
    let (url, _) = fake_http(|_, target| match target {
        "/v1/runtime" => (405, String::new()),
        "/v1/workers" => (501, "not implemented".into()),
        "/v1/workers/garbage" => (200, "{not json".into()),
        "/v1/workers/wrong-shape" => (200, r#"{"worker":{"id":1}}"#.into()),
        "/v1/workers/huge" => (200, format!(r#"{{"worker":"{}"}}"#, "x".repeat(4096))),
        "/v1/workers/proxy" => (502, "<html>bad gateway</html>".into()),
        _ => (
            500,
            r#"{"error":{"code":"internal","message":"boom"}}"#.into(),
        ),
    })
    .await;
    let options = ClientOptions {
        max_response_bytes: 1024,
        ..ClientOptions::default()
    };
    let rt = RuntimeClient::with_options(&url, TOKEN, options).unwrap();

    let e = rt.info().await.unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(405), ErrorCode::Unsupported),
        "{e:?}"
    );
    let e = rt.workers().await.unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(501), ErrorCode::Unsupported),
        "{e:?}"
    );
    for id in ["garbage", "wrong-shape", "huge"] {
        let e = rt.worker(id).await.unwrap_err();
        assert!(matches!(e, ClientError::BadResponse { .. }), "{id}: {e:?}");
        assert!(!e.is_transient());
    }
    let e = rt.worker("proxy").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Internal);
    assert!(e.is_transient());
    let e = rt.worker("other").await.unwrap_err();
    assert_eq!(e.to_string(), "internal (HTTP 500): boom");
    for e in [
        rt.info().await.unwrap_err(),
        rt.worker("huge").await.unwrap_err(),
    ] {
        let text = format!("{e} {e:?}");
        assert!(!text.contains(TOKEN) && !text.contains(&url[7..]), "{text}");
    }
}

/// What one connection of the fake stream server does after the handshake.
type Script = Vec<Message>;

/// A fake WebSocket server: connection `i` gets `scripts[i]` (then a close); records each
/// request's target and `Authorization`.
async fn fake_ws(scripts: Vec<Script>) -> (String, Arc<Mutex<Vec<(String, Option<String>)>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        for script in scripts {
            let (socket, _) = listener.accept().await.unwrap();
            let log = log.clone();
            #[allow(
                clippy::result_large_err,
                reason = "the signature tungstenite asks for"
            )]
            let record =
                move |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
                    let auth = request
                        .headers()
                        .get("authorization")
                        .map(|v| v.to_str().unwrap().to_string());
                    log.lock().unwrap().push((request.uri().to_string(), auth));
                    Ok(response)
                };
            let mut ws = tokio_tungstenite::accept_hdr_async(socket, record)
                .await
                .unwrap();
            for message in script {
                if ws.send(message).await.is_err() {
                    break;
                }
            }
            let _ = ws.close(None).await;
            // Drain until the client goes.
            while let Some(Ok(_)) = ws.next().await {}
        }
    });
    (url, seen)
}

fn text(json: String) -> Message {
    Message::Text(json.into())
}

fn event(epoch: u64, seq: u64) -> Message {
    text(format!(
        r#"{{"type":"event","cursor":"{}","seq":{seq},"runtime_id":"rt","worker_id":null,"at_ms":1,"event":{{"type":"run_started","run_id":"r_{seq}"}}}}"#,
        Cursor::new(epoch, seq)
    ))
}

fn quick() -> ClientOptions {
    ClientOptions {
        stream: StreamOptions {
            backoff_initial: Duration::from_millis(1),
            backoff_max: Duration::from_millis(5),
            max_frame_bytes: 4096,
            ..StreamOptions::default()
        },
        ..ClientOptions::default()
    }
}

/// Every item until the stream ends (with a hang guard).
async fn drain(mut stream: yoi_client::EventStream<Cursor>) -> Vec<StreamItem<Cursor>> {
    let mut items = Vec::new();
    loop {
        match tokio::time::timeout(PATIENCE, stream.next())
            .await
            .expect("in time")
        {
            Some(item) => items.push(item),
            None => return items,
        }
    }
}

fn delivered(items: &[StreamItem<Cursor>]) -> Vec<u64> {
    items
        .iter()
        .filter_map(|i| match i {
            StreamItem::Frame(Frame::Event { seq, .. }) => Some(*seq),
            StreamItem::Frame(Frame::SnapshotAll { .. }) => Some(0),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn the_runtime_wide_stream_resumes_and_ends_on_a_permanent_error() {
    let e = 0x77;
    let snapshot = text(format!(
        r#"{{"type":"snapshot_all","cursor":"{}","workers":[]}}"#,
        Cursor::new(e, 1)
    ));
    let (url, seen) = fake_ws(vec![
        // Snapshot and two events, then the server goes away.
        vec![snapshot, event(e, 2), event(e, 3)],
        // Resumed after 3: a replay that repeats 3, one new event, then lagged.
        vec![
            event(e, 3),
            event(e, 4),
            text(format!(
                r#"{{"type":"lagged","cursor":"{}","message":"behind"}}"#,
                Cursor::new(e, 4)
            )),
        ],
        // Resumed after 4: one event, then a permanent error.
        vec![
            event(e, 5),
            text(r#"{"type":"error","code":"cursor_malformed","message":"bad"}"#.into()),
        ],
    ])
    .await;
    let rt = RuntimeClient::with_options(&url, TOKEN, quick()).unwrap();
    let items = drain(rt.events_stream(None)).await;

    assert_eq!(delivered(&items), [0, 2, 3, 4, 5]);
    let statuses: Vec<&ConnState> = items
        .iter()
        .filter_map(|i| match i {
            StreamItem::Status(s) => Some(s),
            _ => None,
        })
        .collect();
    assert!(matches!(statuses[0], ConnState::Connecting));
    assert!(matches!(statuses[1], ConnState::Connected));
    assert!(matches!(
        statuses[2],
        ConnState::Reconnecting {
            attempt: 1,
            reason: Disconnect::Closed,
            ..
        }
    ));
    assert!(matches!(statuses[3], ConnState::Connected));
    assert!(matches!(
        statuses[4],
        ConnState::Reconnecting { reason: Disconnect::Lagged, after, .. } if after.is_zero()
    ));
    assert!(matches!(statuses[5], ConnState::Connected));
    let ConnState::GaveUp(error) = statuses[6] else {
        panic!("{statuses:?}");
    };
    assert_eq!(error.code(), ErrorCode::CursorMalformed);

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0].0, "/v1/events/ws");
    assert_eq!(
        seen[1].0,
        format!("/v1/events/ws?cursor={}", Cursor::new(e, 3))
    );
    assert_eq!(
        seen[2].0,
        format!("/v1/events/ws?cursor={}", Cursor::new(e, 4))
    );
    for (_, auth) in &seen {
        assert_eq!(auth.as_deref(), Some(&*format!("Bearer {TOKEN}")));
    }
}

#[tokio::test]
async fn oversized_binary_and_undecodable_frames_end_the_stream() {
    for bad in [
        text(format!(
            r#"{{"type":"diagnostic","code":"internal","message":"{}"}}"#,
            "x".repeat(8192)
        )),
        Message::Binary(vec![1, 2, 3].into()),
        text(r#"{"type":"no_such_frame"}"#.into()),
    ] {
        let (url, seen) = fake_ws(vec![vec![event(1, 1), bad.clone()]]).await;
        let rt = RuntimeClient::with_options(&url, TOKEN, quick()).unwrap();
        let items = drain(rt.worker_stream("w_1", Some(Cursor::new(1, 0)))).await;
        assert_eq!(delivered(&items), [1], "{bad:?}");
        let Some(StreamItem::Status(ConnState::GaveUp(e))) = items.last() else {
            panic!("{items:?}");
        };
        assert!(matches!(e, ClientError::BadResponse { .. }), "{e:?}");
        assert_eq!(
            seen.lock().unwrap()[0].0,
            format!("/v1/workers/w_1/events/ws?cursor={}", Cursor::new(1, 0))
        );
    }
}
