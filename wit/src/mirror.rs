//! One mapping between the WIT types as a code generator emits them and the serde mirror.
//!
//! Both sides of the component boundary need it: the guest converts the types
//! `wit-bindgen` generates, the host the types `wasmtime::component::bindgen!` generates.
//! Both generators emit structurally the same Rust for `runtime.wit` (records become
//! structs with snake_case fields, enums and variants become enums whose cases carry one
//! payload, `option` is `Option`, `list` is `Vec`, `string` is `String`), so one macro,
//! [`wit_mirror!`](crate::wit_mirror), expands in each calling crate to `From` impls both
//! ways for every type.
//!
//! Every impl destructures its source without `..` and matches every case, so a field or
//! case added on either side (the WIT file or `types.rs`) is a compile error in both the
//! guest and the host until the mapping is updated. The host's drift test then checks
//! that every case round-trips.

/// Converts each element of a list (used by [`wit_mirror!`](crate::wit_mirror)).
#[doc(hidden)]
pub fn vec<A: Into<B>, B>(v: Vec<A>) -> Vec<B> {
    v.into_iter().map(Into::into).collect()
}

/// Converts an optional value (used by [`wit_mirror!`](crate::wit_mirror)).
#[doc(hidden)]
pub fn opt<A: Into<B>, B>(o: Option<A>) -> Option<B> {
    o.map(Into::into)
}

/// Implements `From` both ways between every type of `runtime.wit`'s `types` interface, as
/// generated into the module at `$path`, and its mirror in this crate.
///
/// ```ignore
/// // guest (wit-bindgen)
/// yoi_protocol::wit_mirror!(crate::component::yoi::runtime::types);
/// // host (wasmtime bindgen!)
/// yoi_protocol::wit_mirror!(crate::wasm::bindings::yoi::runtime::types);
/// ```
///
/// The impls are legal in the calling crate because the generated types are local to it.
#[macro_export]
macro_rules! wit_mirror {
    ($path:path) => {
        const _: () = {
            use $crate::mirror::{opt as __opt, vec as __vec};
            use $path as w;
            use $crate as p;

            $crate::wit_mirror!(@enum WorkerStatus { Idle, Running, Stopped });
            $crate::wit_mirror!(@enum Role { User, Assistant, Tool });
            $crate::wit_mirror!(@enum StopReason {
                EndTurn, MaxTokens, MaxSteps, ContentFilter
            });
            $crate::wit_mirror!(@enum FinishReason {
                Stop, Length, ToolCalls, ContentFilter
            });
            $crate::wit_mirror!(@enum Level { Info, Warn, Error });

            // Records: `plain` fields move as they are, `conv` fields go through `Into`,
            // `vec`/`opt` fields convert element-wise.
            $crate::wit_mirror!(@record WorkerSpec {
                plain: [name, model, system_prompt, tools, max_steps, context_tokens],
                conv: [], vec: [], opt: []
            });
            $crate::wit_mirror!(@record Usage {
                plain: [input_tokens, output_tokens], conv: [], vec: [], opt: []
            });
            $crate::wit_mirror!(@record WorkerInfo {
                plain: [id, name, model, system_prompt, tools, max_steps, created_at_ms,
                        current_run, run_count, message_count, context_tokens],
                conv: [status, usage], vec: [], opt: []
            });
            $crate::wit_mirror!(@record ToolCall {
                plain: [id, name, arguments], conv: [], vec: [], opt: []
            });
            $crate::wit_mirror!(@record Message {
                plain: [content, reasoning, tool_call_id, is_error, run_id],
                conv: [role], vec: [tool_calls], opt: []
            });
            $crate::wit_mirror!(@record PartialToolCall {
                plain: [index, id, name, arguments], conv: [], vec: [], opt: []
            });
            $crate::wit_mirror!(@record InFlight {
                plain: [run_id, step, reasoning, text],
                conv: [], vec: [tool_calls, pending_tools], opt: []
            });
            $crate::wit_mirror!(@record WorkerSnapshot {
                plain: [], conv: [worker], vec: [transcript], opt: [in_flight]
            });
            $crate::wit_mirror!(@record ErrorInfo {
                plain: [code, message], conv: [], vec: [], opt: []
            });
            $crate::wit_mirror!(@record EventRecord {
                plain: [worker_id, at_ms], conv: [event], vec: [], opt: []
            });
            $crate::wit_mirror!(@record ModelRequest {
                plain: [call_id, worker_id, run_id, step, model, system_prompt, tools],
                conv: [], vec: [messages], opt: []
            });
            $crate::wit_mirror!(@record ToolRequest {
                plain: [call_id, worker_id, run_id, tool_call_id, name, arguments],
                conv: [], vec: [], opt: []
            });
            $crate::wit_mirror!(@record Limits {
                plain: [max_workers, max_input_bytes, default_max_steps],
                conv: [], vec: [], opt: []
            });
            $crate::wit_mirror!(@record ModelBudget {
                plain: [model, prompt_tokens], conv: [], vec: [], opt: []
            });
            $crate::wit_mirror!(@record Input {
                plain: [text, request_id], conv: [], vec: [], opt: []
            });
            $crate::wit_mirror!(@record RestoreSummary {
                plain: [workers, interrupted_runs], conv: [], vec: [], opt: []
            });

            // Variants: a WIT case carrying a record is a struct-like case of the mirror
            // with the same fields inline.
            $crate::wit_mirror!(@variant Event {
                WorkerCreated(WorkerInfo) { plain: [], conv: [worker] } as worker,
                StatusChanged(StatusChange) { plain: [], conv: [from, to] },
                InputAccepted(InputAccepted) { plain: [run_id, text, request_id], conv: [] },
                RunStarted(RunRef) { plain: [run_id], conv: [] },
                ReasoningDelta(RunDelta) { plain: [run_id, text], conv: [] },
                ReasoningDone(RunText) { plain: [run_id, text], conv: [] },
                TextDelta(RunDelta) { plain: [run_id, text], conv: [] },
                TextDone(RunText) { plain: [run_id, text], conv: [] },
                ToolCallStarted(ToolCallStarted) { plain: [run_id, id, name], conv: [] },
                ToolCallArgsDelta(ToolCallArgsDelta) { plain: [run_id, id, delta], conv: [] },
                ToolCallReady(ToolCallReady) {
                    plain: [run_id, id, name, arguments], conv: []
                },
                ToolResult(ToolResult) {
                    plain: [run_id, id, name, output, is_error], conv: []
                },
                Usage(UsageEvent) { plain: [run_id], conv: [usage] },
                StepFinished(StepFinished) { plain: [run_id, step], conv: [finish_reason] },
                RunCompleted(RunCompleted) { plain: [run_id], conv: [stop_reason] },
                RunFailed(RunFailed) { plain: [run_id], conv: [error] },
                RunCancelled(RunRef) { plain: [run_id], conv: [] },
                Diagnostic(Diagnostic) { plain: [code, message], conv: [level] },
                ContextTrimmed(ContextTrimmed) {
                    plain: [run_id, step, omitted_messages, estimated_tokens, budget_tokens],
                    conv: []
                },
            });

            $crate::wit_mirror!(@variant Completion {
                TextDelta(TextChunk) { plain: [call_id, text], conv: [] },
                ReasoningDelta(TextChunk) { plain: [call_id, text], conv: [] },
                ToolCallDelta(ToolCallChunk) {
                    plain: [call_id, index, id, name, arguments], conv: []
                },
                Usage(UsageReport) { plain: [call_id], conv: [usage] },
                ModelDone(ModelFinish) { plain: [call_id], conv: [finish_reason] },
                ModelFailed(ModelFailure) { plain: [call_id], conv: [error] },
                ToolDone(ToolOutcome) { plain: [call_id, output, is_error], conv: [] },
            });

            impl From<w::Effect> for p::Effect {
                fn from(v: w::Effect) -> Self {
                    match v {
                        w::Effect::CallModel(r) => p::Effect::CallModel(r.into()),
                        w::Effect::CallTool(r) => p::Effect::CallTool(r.into()),
                        w::Effect::Abort(call_id) => p::Effect::Abort { call_id },
                    }
                }
            }
            impl From<p::Effect> for w::Effect {
                fn from(v: p::Effect) -> Self {
                    match v {
                        p::Effect::CallModel(r) => w::Effect::CallModel(r.into()),
                        p::Effect::CallTool(r) => w::Effect::CallTool(r.into()),
                        p::Effect::Abort { call_id } => w::Effect::Abort(call_id),
                    }
                }
            }

            impl From<w::CoreError> for p::CoreError {
                fn from(v: w::CoreError) -> Self {
                    match v {
                        w::CoreError::WorkerNotFound(worker_id) => {
                            p::CoreError::WorkerNotFound { worker_id }
                        }
                        w::CoreError::Busy(run_id) => p::CoreError::Busy { run_id },
                        w::CoreError::NotRunning => p::CoreError::NotRunning,
                        w::CoreError::Stopped => p::CoreError::Stopped,
                        w::CoreError::InvalidRequest(message) => {
                            p::CoreError::InvalidRequest { message }
                        }
                        w::CoreError::LimitExceeded(message) => {
                            p::CoreError::LimitExceeded { message }
                        }
                    }
                }
            }
            impl From<p::CoreError> for w::CoreError {
                fn from(v: p::CoreError) -> Self {
                    match v {
                        p::CoreError::WorkerNotFound { worker_id } => {
                            w::CoreError::WorkerNotFound(worker_id)
                        }
                        p::CoreError::Busy { run_id } => w::CoreError::Busy(run_id),
                        p::CoreError::NotRunning => w::CoreError::NotRunning,
                        p::CoreError::Stopped => w::CoreError::Stopped,
                        p::CoreError::InvalidRequest { message } => {
                            w::CoreError::InvalidRequest(message)
                        }
                        p::CoreError::LimitExceeded { message } => {
                            w::CoreError::LimitExceeded(message)
                        }
                    }
                }
            }
        };
    };

    (@enum $t:ident { $($case:ident),* $(,)? }) => {
        impl From<w::$t> for p::$t {
            fn from(v: w::$t) -> Self {
                match v { $(w::$t::$case => Self::$case,)* }
            }
        }
        impl From<p::$t> for w::$t {
            fn from(v: p::$t) -> Self {
                match v { $(p::$t::$case => Self::$case,)* }
            }
        }
    };

    (@record $t:ident {
        plain: [$($plain:ident),* $(,)?],
        conv: [$($conv:ident),* $(,)?],
        vec: [$($vec:ident),* $(,)?],
        opt: [$($opt:ident),* $(,)?]
    }) => {
        impl From<w::$t> for p::$t {
            fn from(v: w::$t) -> Self {
                let w::$t { $($plain,)* $($conv,)* $($vec,)* $($opt,)* } = v;
                Self {
                    $($plain,)*
                    $($conv: $conv.into(),)*
                    $($vec: __vec($vec),)*
                    $($opt: __opt($opt),)*
                }
            }
        }
        impl From<p::$t> for w::$t {
            fn from(v: p::$t) -> Self {
                let p::$t { $($plain,)* $($conv,)* $($vec,)* $($opt,)* } = v;
                Self {
                    $($plain,)*
                    $($conv: $conv.into(),)*
                    $($vec: __vec($vec),)*
                    $($opt: __opt($opt),)*
                }
            }
        }
    };

    // Each WIT case carries a record whose fields the mirror case has inline; `as f` means
    // the mirror case instead has one field `f` holding the whole payload, boxed.
    (@variant $t:ident {
        $($case:ident($payload:ident) {
            plain: [$($plain:ident),* $(,)?], conv: [$($conv:ident),* $(,)?]
        } $(as $whole:ident)?),* $(,)?
    }) => {
        impl From<w::$t> for p::$t {
            fn from(v: w::$t) -> Self {
                match v {
                    $(w::$t::$case(x) => $crate::wit_mirror!(@to_p $t, $case, $payload, x,
                        [$($plain),*], [$($conv),*] $(, $whole)?),)*
                }
            }
        }
        impl From<p::$t> for w::$t {
            fn from(v: p::$t) -> Self {
                match v {
                    $($crate::wit_mirror!(@p_pat $t, $case, [$($plain),*], [$($conv),*]
                        $(, $whole)?) => w::$t::$case($crate::wit_mirror!(@to_w $payload,
                        [$($plain),*], [$($conv),*] $(, $whole)?)),)*
                }
            }
        }
    };

    // WIT payload -> mirror case.
    (@to_p $t:ident, $case:ident, $payload:ident, $x:ident,
        [$($plain:ident),*], [$($conv:ident),*]) => {{
        let w::$payload { $($plain,)* $($conv,)* } = $x;
        p::$t::$case { $($plain,)* $($conv: $conv.into(),)* }
    }};
    (@to_p $t:ident, $case:ident, $payload:ident, $x:ident, [], [$conv:ident], $whole:ident) => {
        p::$t::$case { $whole: Box::new($x.into()) }
    };
    // Pattern binding the fields of a mirror case.
    (@p_pat $t:ident, $case:ident, [$($plain:ident),*], [$($conv:ident),*]) => {
        p::$t::$case { $($plain,)* $($conv,)* }
    };
    (@p_pat $t:ident, $case:ident, [], [$conv:ident], $whole:ident) => {
        p::$t::$case { $whole: $conv }
    };
    // Mirror case fields -> WIT payload.
    (@to_w $payload:ident, [$($plain:ident),*], [$($conv:ident),*]) => {
        w::$payload { $($plain,)* $($conv: $conv.into(),)* }
    };
    (@to_w $payload:ident, [], [$conv:ident], $whole:ident) => {
        (*$conv).into()
    };
}
