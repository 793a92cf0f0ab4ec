//! Model providers end to end through `yoi-host`: an OpenAI-compatible server (a fake one
//! on loopback, speaking SSE), configured as `[providers.NAME]`, serving workers of model
//! `NAME/model-id`; and the context window, with the scripted model's own window.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use common::*;
use futures_util::stream;
use serde_json::{Value, json};
use yoi_driver::ProviderConfig;

/// What the fake server saw and how it answers.
#[derive(Clone, Default)]
struct Fake {
    requests: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
    /// Answer every request with this status and body instead.
    fail: Option<(u16, &'static str)>,
}

/// The fake model: asked to read a file, it calls `read_file`; given a tool result, it
/// answers by quoting it; otherwise it says hello. Reasoning comes as
/// `reasoning_content`, usage in its own chunk, as real servers send them.
async fn completions(State(fake): State<Fake>, headers: HeaderMap, body: String) -> Response {
    let body: Value = serde_json::from_str(&body).expect("the request is JSON");
    fake.requests.lock().unwrap().push((headers, body.clone()));
    if let Some((status, text)) = fake.fail {
        return (StatusCode::from_u16(status).unwrap(), text).into_response();
    }
    let last = body["messages"].as_array().unwrap().last().unwrap().clone();
    let chunk = |delta: Value, finish: Option<&str>| json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    let mut chunks = vec![chunk(
        json!({"role": "assistant", "reasoning_content": "Thinking "}),
        None,
    )];
    chunks.push(chunk(json!({"reasoning_content": "it over."}), None));
    if last["role"] == "tool" {
        let said = last["content"].as_str().unwrap();
        chunks.push(chunk(json!({"content": "The tool said: "}), None));
        chunks.push(chunk(json!({"content": said}), Some("stop")));
    } else if last["content"].as_str().unwrap().starts_with("read ") {
        let path = last["content"]
            .as_str()
            .unwrap()
            .trim_start_matches("read ");
        chunks.push(chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_x", "type": "function",
                                   "function": {"name": "read_file", "arguments": ""}}]}),
            None,
        ));
        chunks.push(chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": format!("{{\"path\":\"{path}\"}}")}}]}),
            Some("tool_calls"),
        ));
    } else {
        chunks.push(chunk(json!({"content": "Hello "}), None));
        chunks.push(chunk(json!({"content": "from the fake."}), Some("stop")));
    }
    chunks.push(json!({"choices": [], "usage": {"prompt_tokens": 42, "completion_tokens": 7}}));
    let events: Vec<Result<SseEvent, std::convert::Infallible>> = chunks
        .into_iter()
        .map(|c| Ok(SseEvent::default().data(c.to_string())))
        .chain(std::iter::once(Ok(SseEvent::default().data("[DONE]"))))
        .collect();
    Sse::new(stream::iter(events)).into_response()
}

/// Serves the fake; returns its base URL.
async fn serve(fake: Fake) -> String {
    let app = Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/v1")
}

fn provider(base: &str, extra: &str) -> ProviderConfig {
    toml::from_str(&format!(
        "kind = \"openai\"\nbase_url = \"{base}\"\nmodels = [\"m\"]\ncontext_tokens = 8192\n{extra}"
    ))
    .unwrap()
}

fn key_file(dir: &std::path::Path) -> String {
    let path = dir.join("fake.key");
    std::fs::write(&path, "sk-fake-secret\n").unwrap();
    path.display().to_string()
}

async fn create(h: &TestHost, spec: Value) -> String {
    let resp = h
        .post("/runtimes/local/workers")
        .json(&spec)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{:?}", resp.text().await);
    let body: Value = resp.json().await.unwrap();
    body["worker"]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_worker_on_an_openai_compatible_server_streams_runs_tools_and_keeps_its_transcript() {
    let fake = Fake::default();
    let base = serve(fake.clone()).await;
    let keys = tempfile::tempdir().unwrap();
    let key = key_file(keys.path());
    let h = start_with(|c| {
        c.providers = BTreeMap::from([(
            "fake".to_string(),
            provider(&base, &format!("api_key_file = {key:?}\ntemperature = 0.2")),
        )]);
    })
    .await;

    let body: Value = h
        .get("/runtimes/local")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let models = body["runtime"]["capabilities"]["models"]
        .as_array()
        .unwrap();
    assert!(models.contains(&json!("fake/m")), "{models:?}");
    assert!(models.contains(&json!("scripted")));
    assert!(
        !body.to_string().contains(&base),
        "no provider address in the API"
    );

    // An unknown model of a known provider is refused at create.
    let resp = h
        .post("/runtimes/local/workers")
        .json(&json!({"name": "x", "model": "fake/other"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    let w = create(&h, json!({"name": "real", "model": "fake/m", "tools": ["read_file"], "system_prompt": "Be brief."})).await;
    let mut ws = h.ws(&h.worker_stream(&w, None)).await;
    assert_eq!(ws.frame().await["type"], "snapshot");
    h.input(&w, "read notes.txt").await;
    let frames = ws.events_until(|f| run_ended(f, None)).await;
    let kinds: Vec<&str> = frames
        .iter()
        .map(|f| f["event"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.last(), Some(&"run_completed"), "{kinds:?}");
    for kind in [
        "reasoning_delta",
        "tool_call_started",
        "tool_call_ready",
        "tool_result",
        "text_delta",
        "usage",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    let result = frames
        .iter()
        .find(|f| f["event"]["type"] == "tool_result")
        .unwrap();
    assert_eq!(
        result["event"]["is_error"], true,
        "notes.txt does not exist"
    );

    // Two model calls: the second carries the tool call and its (error) result.
    let requests = fake.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    let (headers, second) = &requests[1];
    assert_eq!(headers["authorization"], "Bearer sk-fake-secret");
    assert_eq!(second["model"], "m");
    assert_eq!(second["temperature"], 0.2);
    assert_eq!(second["tools"][0]["function"]["name"], "read_file");
    let messages = second["messages"].as_array().unwrap();
    assert_eq!(
        messages[0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(messages[2]["tool_calls"][0]["id"], "call_x");
    assert_eq!(messages[3]["role"], "tool");
    assert_eq!(messages[3]["tool_call_id"], "call_x");
    assert!(
        messages[3]["content"]
            .as_str()
            .unwrap()
            .starts_with("error: ")
    );

    let body: Value = h
        .get(&format!("/runtimes/local/workers/{w}/transcript"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let transcript = body["messages"].as_array().unwrap();
    assert_eq!(transcript.len(), 4);
    assert_eq!(transcript[1]["reasoning"], "Thinking it over.");
    assert!(
        transcript[3]["content"]
            .as_str()
            .unwrap()
            .starts_with("The tool said: ")
    );
    let info = h.worker(&w).await;
    assert_eq!(
        info["usage"],
        json!({"input_tokens": 84, "output_tokens": 14})
    );
}

#[tokio::test]
async fn provider_failures_end_the_run_with_a_typed_error_and_no_secret() {
    let fake = Fake {
        fail: Some((
            401,
            r#"{"error":{"message":"Incorrect API key provided: sk-fake-secret"}}"#,
        )),
        ..Fake::default()
    };
    let base = serve(fake).await;
    let keys = tempfile::tempdir().unwrap();
    let key = key_file(keys.path());
    let h = start_with(|c| {
        c.providers = BTreeMap::from([(
            "fake".to_string(),
            provider(&base, &format!("api_key_file = {key:?}")),
        )]);
    })
    .await;
    let w = create(&h, json!({"name": "denied", "model": "fake/m"})).await;
    let mut ws = h.ws(&h.worker_stream(&w, None)).await;
    ws.frame().await;
    h.input(&w, "hello").await;
    let frames = ws.events_until(|f| run_ended(f, None)).await;
    let end = &frames.last().unwrap()["event"];
    assert_eq!(end["type"], "run_failed");
    assert_eq!(end["error"]["code"], "auth");
    let message = end["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("provider fake") && message.contains("HTTP 401"),
        "{message}"
    );
    assert!(!message.contains(&base), "{message}");
}

#[tokio::test]
async fn a_provider_that_cannot_be_set_up_stops_the_host_with_a_named_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.providers = BTreeMap::from([(
        "fake".to_string(),
        provider(
            "http://127.0.0.1:9/v1",
            "api_key_env = \"YOI_TEST_NO_SUCH_KEY_VAR\"",
        ),
    )]);
    let err = match yoi_host::Host::start(config).await {
        Ok(_) => panic!("the host must not start"),
        Err(e) => format!("{e:#}"),
    };
    assert_eq!(
        err,
        "providers.fake.api_key_env: the environment variable YOI_TEST_NO_SUCH_KEY_VAR is not set"
    );
}

#[tokio::test]
async fn long_conversations_are_trimmed_to_the_models_window() {
    // The scripted model refuses prompts of more than 40 words, as a real server
    // refuses prompts longer than its window; the runtime trims requests to fit.
    let h = start_with(|c| {
        local_settings(c).scripted.context_tokens = Some(40.try_into().unwrap());
        local_settings(c).scripted.reasoning = false;
    })
    .await;
    let w = create(&h, json!({"name": "chatty", "model": "scripted"})).await;
    let mut ws = h.ws(&h.worker_stream(&w, None)).await;
    ws.frame().await;
    let mut trimmed = 0;
    for i in 1..=4 {
        h.input(&w, &format!("message number {i}")).await;
        let frames = ws.events_until(|f| run_ended(f, None)).await;
        assert_eq!(
            frames.last().unwrap()["event"]["type"],
            "run_completed",
            "run {i}"
        );
        trimmed += frames
            .iter()
            .filter(|f| f["event"]["type"] == "context_trimmed")
            .count();
    }
    assert!(trimmed > 0, "later runs left earlier ones out");
    let body: Value = h
        .get(&format!("/runtimes/local/workers/{w}/transcript"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["messages"].as_array().unwrap().len(),
        8,
        "the transcript keeps all"
    );

    // An input that alone exceeds the window is sent anyway and refused by the model.
    let long = vec!["word"; 60].join(" ");
    h.input(&w, &long).await;
    let frames = ws.events_until(|f| run_ended(f, None)).await;
    let end = &frames.last().unwrap()["event"];
    assert_eq!(end["type"], "run_failed");
    assert_eq!(end["error"]["code"], "context_length");
}

#[tokio::test]
async fn a_missing_component_stops_the_host_before_it_binds() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&dir.path().join("data"));
    let missing = dir.path().join("no-such-component.wasm");
    config.component = Some(missing.clone());
    let err = match yoi_host::Host::start(config).await {
        Ok(_) => panic!("the host must not start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.starts_with(&format!(
            "the runtime component {} does not exist",
            missing.display()
        )),
        "{err}"
    );
    // Nothing was created: the check runs before the data directory, the token and the
    // socket.
    assert!(!dir.path().join("data").exists());
}
