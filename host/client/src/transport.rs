//! The one HTTP layer under both APIs: URLs, the bearer token, timeouts, bounded bodies,
//! typed errors; and the targets of streams.

use std::fmt;
use std::sync::Arc;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::error::ClientError;
use crate::options::ClientOptions;
use crate::stream::{EventStream, StreamCursor, StreamTarget};

/// Most of an error answer that is read (its JSON is a code and a sentence).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A server and the token to present to it. Cheap to clone (shared).
#[derive(Clone)]
pub(crate) struct Transport {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// `http://host:port[/prefix]`: API paths are appended to it.
    base: Url,
    /// `Bearer <token>`, marked sensitive.
    auth: HeaderValue,
    options: ClientOptions,
}

impl Transport {
    pub(crate) fn new(
        base_url: &str,
        token: &str,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        // Errors here never quote the URL or the token: both may be secret.
        let base = Url::parse(base_url)
            .map_err(|e| ClientError::config(format!("the server URL is not a URL: {e}")))?;
        if base.scheme() != "http" {
            return Err(ClientError::config(
                "the server URL must start with http:// (this client has no TLS)",
            ));
        }
        if base.host().is_none() {
            return Err(ClientError::config("the server URL has no host"));
        }
        let token = token.trim();
        if token.is_empty() {
            return Err(ClientError::config("the access token is empty"));
        }
        let mut auth = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| ClientError::config("the access token is not printable ASCII text"))?;
        auth.set_sensitive(true);
        let http = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .tcp_nodelay(true)
            // Streams connect directly; REST goes the same way, whatever the environment's
            // proxy variables say.
            .no_proxy()
            .build()
            .map_err(ClientError::from_reqwest)?;
        Ok(Transport {
            inner: Arc::new(Inner {
                http,
                base,
                auth,
                options,
            }),
        })
    }

    /// The base URL with `path` appended, each segment percent-encoded.
    fn url(&self, path: &[&str]) -> Url {
        let mut url = self.inner.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(path);
        }
        url
    }

    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        path: &[&str],
        query: &[(&str, &str)],
    ) -> Result<T, ClientError> {
        let mut url = self.url(path);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        self.call(self.inner.http.get(url)).await
    }

    /// A POST with a JSON body, or with none.
    pub(crate) async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &[&str],
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let mut request = self.inner.http.post(self.url(path));
        if let Some(body) = body {
            request = request.json(body);
        }
        self.call(request).await
    }

    /// A DELETE, answered with no body.
    pub(crate) async fn delete(&self, path: &[&str]) -> Result<(), ClientError> {
        self.send(self.inner.http.delete(self.url(path))).await?;
        Ok(())
    }

    async fn call<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let response = self.send(request).await?;
        let body = read_body(response, self.inner.options.max_response_bytes).await?;
        serde_json::from_slice(&body)
            .map_err(|e| ClientError::bad_response(format!("the answer does not decode: {e}")))
    }

    /// Sends `request` with the token; a non-2xx answer becomes its typed error.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let response = request
            .header(AUTHORIZATION, self.inner.auth.clone())
            .send()
            .await
            .map_err(ClientError::from_reqwest)?;
        let status = response.status();
        if !status.is_success() {
            // An unreadable error body still leaves the status.
            let body = read_body(response, MAX_ERROR_BODY)
                .await
                .unwrap_or_default();
            return Err(ClientError::from_status(status.as_u16(), &body));
        }
        Ok(response)
    }

    /// A stream at `path` (below the base URL), starting after `start`.
    pub(crate) fn stream<C: StreamCursor>(
        &self,
        path: &[&str],
        start: Option<C>,
    ) -> EventStream<C> {
        let mut url = self.url(path);
        // `http` → `ws` cannot fail: both are special schemes.
        let _ = url.set_scheme("ws");
        EventStream::new(
            StreamTarget {
                url,
                auth: self.inner.auth.clone(),
                options: self.inner.options.clone(),
            },
            start,
        )
    }
}

impl fmt::Debug for Transport {
    /// Without the URL or the token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

/// Reads a body of at most `max` bytes; a longer one is a bad response, not a big buffer.
async fn read_body(mut response: reqwest::Response, max: usize) -> Result<Vec<u8>, ClientError> {
    let too_large = || ClientError::bad_response(format!("the answer is larger than {max} bytes"));
    if response
        .content_length()
        .is_some_and(|len| len > max as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(body_error)? {
        if body.len() + chunk.len() > max {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A failure while reading an answer's body: the connection broke (reset, closed
/// early) or timed out; reqwest calls some of these decode errors, which would read as
/// a bad answer.
fn body_error(e: reqwest::Error) -> ClientError {
    match ClientError::from_reqwest(e) {
        ClientError::BadResponse { message } => ClientError::Network {
            message: format!("the connection broke during the answer: {message}"),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_appended_and_escaped_below_a_prefix() {
        let t = Transport::new("http://127.0.0.1:38700", "tok", ClientOptions::default()).unwrap();
        assert_eq!(
            t.url(&["api", "v1", "runtimes", "a/b c"]).as_str(),
            "http://127.0.0.1:38700/api/v1/runtimes/a%2Fb%20c"
        );
        let t = Transport::new("http://h:1/prefix/", "tok", ClientOptions::default()).unwrap();
        assert_eq!(
            t.url(&["v1", "workers"]).as_str(),
            "http://h:1/prefix/v1/workers"
        );
    }

    #[test]
    fn bad_urls_and_tokens_are_config_errors_that_quote_neither() {
        let secret_url = "ftp://secret-host:1/";
        let e = Transport::new(secret_url, "tok", ClientOptions::default()).unwrap_err();
        assert!(matches!(e, ClientError::Config { .. }));
        assert!(!format!("{e} {e:?}").contains("secret-host"));
        let e =
            Transport::new("not a url secret-host", "tok", ClientOptions::default()).unwrap_err();
        assert!(!format!("{e} {e:?}").contains("secret-host"));
        let e =
            Transport::new("http://h:1", "secret\ntoken", ClientOptions::default()).unwrap_err();
        assert!(!format!("{e} {e:?}").contains("secret"));
        assert!(Transport::new("http://h:1", "  ", ClientOptions::default()).is_err());
    }

    #[test]
    fn debug_shows_neither_url_nor_token() {
        let t = Transport::new(
            "http://secret-host:1",
            "secret-token",
            ClientOptions::default(),
        )
        .unwrap();
        let text = format!("{t:?}");
        assert!(!text.contains("secret"), "{text}");
        let stream = t.stream::<yoi_protocol::Cursor>(&["v1", "events", "ws"], None);
        let text = format!("{stream:?}");
        assert!(!text.contains("secret"), "{text}");
    }
}
