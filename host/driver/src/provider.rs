//! The model-provider interface the driver calls.
//!
//! A [`Provider`] performs one model call: it receives the core's [`ModelRequest`] and
//! sends the call's [`Completion`]s, in order, to a bounded channel. The driver owns
//! everything around it (choosing the provider by model name, abort, timeouts, batching
//! completions into the core), so a provider only has to stream.
//!
//! The trait is object safe (`Arc<dyn Provider>`): `call` returns a boxed future instead
//! of being an `async fn`, so no `async_trait` is needed.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::mpsc;
use yoi_protocol::{Completion, ModelRequest};

/// A boxed, `Send` future, as returned by [`Provider::call`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A model provider: something that answers a [`ModelRequest`] with a stream of
/// [`Completion`]s.
///
/// # Contract
///
/// - Every completion carries `request.call_id`.
/// - Deltas (`ReasoningDelta`, `TextDelta`, `ToolCallDelta`) come first, in the order
///   the model produced them; then optionally one `Usage`; then exactly one final
///   `ModelDone` or `ModelFailed`, after which nothing more is sent.
/// - Failures are reported as `ModelFailed` with one of the [`codes`], never by
///   panicking. A future that returns without a final completion is treated by the
///   driver as a failed call.
/// - When `out` is closed (the receiver was dropped), the provider stops promptly and
///   returns.
/// - Dropping the returned future (abort, timeout) must be safe at any `.await` point
///   and must leave no detached work behind.
/// - Back-pressure: `out` is bounded; a provider awaits `send` and so runs no faster
///   than the driver consumes.
pub trait Provider: Send + Sync {
    /// Performs one model call, sending its completions to `out`.
    fn call<'a>(
        &'a self,
        request: ModelRequest,
        out: mpsc::Sender<Completion>,
    ) -> BoxFuture<'a, ()>;
}

/// Stable `ModelFailed` error codes providers use.
pub mod codes {
    /// The provider refused the credentials.
    pub const AUTH: &str = "auth";
    /// The provider is rate limiting this client.
    pub const RATE_LIMIT: &str = "rate_limit";
    /// The provider did not answer in time.
    pub const TIMEOUT: &str = "timeout";
    /// The provider answered with something that could not be understood.
    pub const BAD_RESPONSE: &str = "bad_response";
    /// The provider could not be reached.
    pub const UNAVAILABLE: &str = "unavailable";
    /// The request was refused as invalid (for example, an unknown model).
    pub const INVALID_REQUEST: &str = "invalid_request";
    /// The prompt does not fit the model's context window.
    pub const CONTEXT_LENGTH: &str = "context_length";
    /// The model failed while answering (an error in the middle of a stream).
    pub const MODEL_ERROR: &str = "model_error";
    /// The answer passed the most a model call may produce.
    pub const OUTPUT_TOO_LARGE: &str = "output_too_large";
}
