//! `openai`: any server that speaks the OpenAI chat-completions API (OpenAI, vLLM,
//! Ollama, llama.cpp's server, DeepSeek, OpenRouter, LM Studio, ...) as a [`Provider`].
//!
//! One call is one `POST {base_url}/chat/completions` with `stream: true`, read as
//! server-sent events (`eventsource-stream` over reqwest's byte stream) and decoded by
//! the pure [`decode::StreamDecoder`]. Dropping the call's future (abort, timeout)
//! drops the response, which closes the connection, so the server sees the cancel.
//!
//! Configuration: [`ProviderConfig`] (`[providers.NAME]`). Failures are typed
//! `ModelFailed` codes (see [`crate::provider::codes`]): `auth`, `rate_limit`,
//! `timeout`, `unavailable`, `invalid_request`, `context_length`, `bad_response`,
//! `model_error`, `output_too_large`.

mod chunk;
mod config;
mod decode;
mod errors;
mod request;
mod retry;
mod think;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::{StreamExt, TryStreamExt};
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use tokio::sync::mpsc;
use tokio::time::timeout;
use yoi_protocol::{Completion, ErrorInfo, ModelRequest};

pub use config::{
    ApiKey, BaseUrl, DEFAULT_CONTEXT_TOKENS, ModelEntry, ProviderConfig, ProviderKind,
    ReasoningHistory,
};

use crate::catalog::ModelCatalog;
use crate::provider::{BoxFuture, Provider, codes};
use decode::{Flow, StreamDecoder};
use request::Parameters;
use retry::RetryPolicy;

/// Most bytes one answer may carry on the wire before the call fails (a server that
/// never ends an event could otherwise grow the SSE parser's buffer without bound).
const MAX_RESPONSE_BYTES: u64 = 64 << 20;
/// Most bytes of an error answer read for its message.
const MAX_ERROR_BODY: usize = 64 << 10;

/// An OpenAI-compatible chat-completions provider.
pub struct OpenAiProvider {
    name: String,
    client: reqwest::Client,
    endpoint: String,
    headers: HeaderMap,
    parameters: Parameters,
    /// `max_tokens` of models that set their own.
    max_tokens: HashMap<String, u32>,
    think_tags: bool,
    idle_timeout: Duration,
    retry: RetryPolicy,
}

impl std::fmt::Debug for OpenAiProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiProvider")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl OpenAiProvider {
    /// A provider named `name` (its models are `name/<model-id>`) with `key`.
    pub fn new(name: &str, config: &ProviderConfig, key: &ApiKey) -> Result<Self, String> {
        config.validate()?;
        let mut headers = HeaderMap::new();
        for (k, v) in &config.headers {
            let k = HeaderName::from_bytes(k.as_bytes()).map_err(|e| format!("headers: {e}"))?;
            let v = HeaderValue::from_str(v).map_err(|e| format!("headers.{k}: {e}"))?;
            headers.insert(k, v);
        }
        if let Some(key) = key.expose() {
            let mut v = HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| "the API key contains characters a header cannot carry".to_string())?;
            v.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, v);
        }
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        );
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout())
            .tcp_nodelay(true)
            .user_agent(concat!("yoi/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        let max_tokens = config
            .models
            .iter()
            .filter_map(|m| Some((m.id.clone(), m.max_tokens?.get())))
            .collect();
        Ok(OpenAiProvider {
            name: name.to_string(),
            client,
            endpoint: format!("{}/chat/completions", config.base_url.as_str()),
            headers,
            parameters: Parameters {
                temperature: config.temperature,
                max_tokens: config.max_tokens.map(|n| n.get()),
                reasoning_effort: config.reasoning_effort.clone(),
                reasoning_history: Some(config.reasoning_history()),
            },
            max_tokens,
            think_tags: config.think_tags,
            idle_timeout: config.idle_timeout(),
            retry: RetryPolicy {
                max_retries: config.max_retries,
                max_wait: config.max_retry_wait(),
            },
        })
    }

    /// Builds the provider `name` from its config (reading its key) and adds its models
    /// to `catalog` with their prompt-token budgets.
    pub fn register(
        name: &str,
        config: &ProviderConfig,
        catalog: &mut ModelCatalog,
    ) -> Result<(), String> {
        let key = config.api_key()?;
        let provider: Arc<dyn Provider> = Arc::new(OpenAiProvider::new(name, config, &key)?);
        for entry in &config.models {
            let budget = Some(config.prompt_tokens(entry));
            if entry.id == "*" {
                catalog.add_any_of(name, provider.clone(), budget);
            } else {
                catalog.add(format!("{name}/{}", entry.id), provider.clone(), budget);
            }
        }
        Ok(())
    }

    /// The server's model id for a yoi model name (`name/<id>`).
    fn model_id<'a>(&self, model: &'a str) -> &'a str {
        model
            .strip_prefix(self.name.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .unwrap_or(model)
    }

    async fn stream(&self, request: ModelRequest, out: &mpsc::Sender<Completion>) {
        let call_id = request.call_id;
        let failed = |error: ErrorInfo| Completion::ModelFailed { call_id, error };
        let model_id = self.model_id(&request.model);
        let mut parameters = self.parameters.clone();
        if let Some(&n) = self.max_tokens.get(model_id) {
            parameters.max_tokens = Some(n);
        }
        let body = request::body(&request, model_id, &parameters);
        let response = match self.open(&body).await {
            Ok(response) => response,
            Err(error) => {
                let _ = out.send(failed(error)).await;
                return;
            }
        };
        let mut decoder = StreamDecoder::new(call_id, &self.name, self.think_tags);
        let mut batch = Vec::new();
        let is_sse = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v.contains("event-stream"));
        if !is_sse {
            // A server that ignored `stream: true` and answered in one piece.
            match timeout(self.idle_timeout, self.bounded_text(response)).await {
                Err(_) => batch.push(failed(self.silent())),
                Ok(Err(error)) => batch.push(failed(error)),
                Ok(Ok(text)) => decoder.whole(&text, &mut batch),
            }
            for c in batch {
                if out.send(c).await.is_err() {
                    return;
                }
            }
            return;
        }
        // The SSE parser buffers an event until its end: cut the bytes off past the
        // bound so a server that never ends one cannot grow that buffer without limit.
        let cut = Arc::new(AtomicBool::new(false));
        let mut received = 0u64;
        let cut_flag = cut.clone();
        let bytes = response.bytes_stream().take_while(move |chunk| {
            if let Ok(chunk) = chunk {
                received += chunk.len() as u64;
            }
            let within = received <= MAX_RESPONSE_BYTES;
            if !within {
                cut_flag.store(true, Ordering::Relaxed);
            }
            std::future::ready(within)
        });
        let name = self.name.clone();
        let mut events = bytes.eventsource();
        loop {
            let next = timeout(self.idle_timeout, events.next()).await;
            let flow = match next {
                Err(_) => {
                    batch.push(failed(self.silent()));
                    Flow::End
                }
                Ok(None) if cut.load(Ordering::Relaxed) => {
                    batch.push(failed(ErrorInfo::new(
                        codes::OUTPUT_TOO_LARGE,
                        format!("provider {name}'s answer passed {MAX_RESPONSE_BYTES} bytes"),
                    )));
                    Flow::End
                }
                Ok(None) => {
                    decoder.eof(&mut batch);
                    Flow::End
                }
                Ok(Some(Err(e))) => {
                    let error = match e {
                        eventsource_stream::EventStreamError::Transport(e) => {
                            errors::transport_error(&name, &e)
                        }
                        other => ErrorInfo::new(
                            codes::BAD_RESPONSE,
                            format!("provider {name} sent a malformed event stream: {other}"),
                        ),
                    };
                    batch.push(failed(error));
                    Flow::End
                }
                Ok(Some(Ok(event))) => decoder.push(&event.data, &mut batch),
            };
            for c in batch.drain(..) {
                if out.send(c).await.is_err() {
                    return;
                }
            }
            if flow == Flow::End {
                return;
            }
        }
    }

    /// Sends the request until an answer starts (a success status), trying again
    /// after transient failures as [`RetryPolicy`] allows; the error of the last try.
    async fn open(&self, body: &request::Body<'_>) -> Result<reqwest::Response, ErrorInfo> {
        let mut attempt = 0;
        loop {
            let send = self
                .client
                .post(&self.endpoint)
                .headers(self.headers.clone())
                .json(body)
                .send();
            let (error, asked) = match timeout(self.idle_timeout, send).await {
                // A server that accepted the request and stays silent is not asked again:
                // it may be working on it.
                Err(_) => return Err(self.silent()),
                Ok(Err(e)) => {
                    let error = errors::transport_error(&self.name, &e);
                    if !(e.is_connect() || e.is_request()) {
                        return Err(error);
                    }
                    (error, None)
                }
                Ok(Ok(response)) if response.status().is_success() => return Ok(response),
                Ok(Ok(response)) => {
                    let status = response.status().as_u16();
                    let asked = retry::asked_wait(response.headers());
                    let retry_after = response
                        .headers()
                        .get(header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let body = self.error_body(response).await;
                    let error =
                        errors::http_error(&self.name, status, &body, retry_after.as_deref());
                    if !retry::retryable_status(status) {
                        return Err(error);
                    }
                    (error, asked)
                }
            };
            let Some(wait) = self.retry.wait(attempt, asked, retry::jitter()) else {
                return Err(error);
            };
            tracing::debug!(
                provider = %self.name,
                attempt,
                wait_ms = wait.as_millis() as u64,
                code = %error.code,
                "model call failed before its answer; trying again"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    fn silent(&self) -> ErrorInfo {
        ErrorInfo::new(
            codes::TIMEOUT,
            format!(
                "provider {} sent nothing for {} ms (idle_timeout_ms)",
                self.name,
                self.idle_timeout.as_millis()
            ),
        )
    }

    /// The start of an error answer's body, for its message.
    async fn error_body(&self, response: reqwest::Response) -> String {
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        let read = async {
            while let Ok(Some(chunk)) = stream.try_next().await {
                body.extend_from_slice(&chunk);
                if body.len() >= MAX_ERROR_BODY {
                    body.truncate(MAX_ERROR_BODY);
                    break;
                }
            }
        };
        let _ = timeout(self.idle_timeout, read).await;
        String::from_utf8_lossy(&body).into_owned()
    }

    /// A whole answer's text, at most [`MAX_RESPONSE_BYTES`].
    async fn bounded_text(&self, response: reqwest::Response) -> Result<String, ErrorInfo> {
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream
            .try_next()
            .await
            .map_err(|e| errors::transport_error(&self.name, &e))?
        {
            body.extend_from_slice(&chunk);
            if body.len() as u64 > MAX_RESPONSE_BYTES {
                return Err(ErrorInfo::new(
                    codes::OUTPUT_TOO_LARGE,
                    format!(
                        "provider {}'s answer passed {MAX_RESPONSE_BYTES} bytes",
                        self.name
                    ),
                ));
            }
        }
        String::from_utf8(body).map_err(|_| {
            ErrorInfo::new(
                codes::BAD_RESPONSE,
                format!("provider {}'s answer is not UTF-8", self.name),
            )
        })
    }
}

impl Provider for OpenAiProvider {
    fn call<'a>(
        &'a self,
        request: ModelRequest,
        out: mpsc::Sender<Completion>,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move { self.stream(request, &out).await })
    }
}

#[cfg(test)]
mod tests;
