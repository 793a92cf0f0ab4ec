//! Validation of client requests. Every error names the field at fault.

use yoi_protocol::{CoreError, Input, Limits, WorkerSpec};

/// Longest worker name, in bytes.
pub(crate) const MAX_NAME_BYTES: usize = 128;
/// Longest model name, in bytes.
pub(crate) const MAX_MODEL_BYTES: usize = 128;
/// Most tools a worker may be allowed.
pub(crate) const MAX_TOOLS: usize = 32;
/// Longest tool name, in characters (tool names are ASCII).
pub(crate) const MAX_TOOL_NAME: usize = 64;
/// Allowed `max_steps` range.
pub(crate) const MIN_STEPS: u32 = 1;
pub(crate) const MAX_STEPS: u32 = 64;
/// Smallest prompt-token budget a worker may ask for.
pub(crate) const MIN_CONTEXT_TOKENS: u32 = 64;
/// Longest client request id, in bytes.
pub(crate) const MAX_REQUEST_ID_BYTES: usize = 128;

fn invalid(message: String) -> CoreError {
    CoreError::InvalidRequest { message }
}

/// At most 48 characters of `s`, for error messages (client strings may be huge).
pub(crate) fn preview(s: &str) -> String {
    const MAX: usize = 48;
    match s.char_indices().nth(MAX) {
        None => format!("{s:?}"),
        Some((cut, _)) => format!("{:?}…", s.get(..cut).unwrap_or_default()),
    }
}

/// Checks a worker spec; returns its effective `max_steps`.
pub(crate) fn spec(spec: &WorkerSpec, limits: &Limits) -> Result<u32, CoreError> {
    let name_len = spec.name.len();
    if name_len == 0 || name_len > MAX_NAME_BYTES {
        return Err(invalid(format!(
            "name must be 1 to {MAX_NAME_BYTES} bytes (got {name_len})"
        )));
    }
    if spec.name.chars().any(char::is_control) {
        return Err(invalid("name must not contain control characters".into()));
    }
    let model_len = spec.model.len();
    if model_len == 0 || model_len > MAX_MODEL_BYTES {
        return Err(invalid(format!(
            "model must be 1 to {MAX_MODEL_BYTES} bytes (got {model_len})"
        )));
    }
    if spec.model.chars().any(char::is_control) {
        return Err(invalid("model must not contain control characters".into()));
    }
    if let Some(prompt) = &spec.system_prompt {
        let max = limits.max_input_bytes as usize;
        if prompt.len() > max {
            return Err(invalid(format!(
                "system_prompt is {} bytes; at most {max} are allowed (max_input_bytes)",
                prompt.len()
            )));
        }
    }
    if spec.tools.len() > MAX_TOOLS {
        return Err(invalid(format!(
            "tools may name at most {MAX_TOOLS} tools (got {})",
            spec.tools.len()
        )));
    }
    for (i, tool) in spec.tools.iter().enumerate() {
        if !is_tool_name(tool) {
            return Err(invalid(format!(
                "tools[{i}] {} is not a tool name (1 to {MAX_TOOL_NAME} characters of a-z, 0-9, '_' and '-')",
                preview(tool)
            )));
        }
        if spec.tools.get(..i).unwrap_or_default().contains(tool) {
            return Err(invalid(format!(
                "tools[{i}] {} is listed twice",
                preview(tool)
            )));
        }
    }
    if let Some(n) = spec.context_tokens
        && n < MIN_CONTEXT_TOKENS
    {
        return Err(invalid(format!(
            "context_tokens must be at least {MIN_CONTEXT_TOKENS} (got {n})"
        )));
    }
    match spec.max_steps {
        None => Ok(default_max_steps(limits)),
        Some(n) if (MIN_STEPS..=MAX_STEPS).contains(&n) => Ok(n),
        Some(n) => Err(invalid(format!(
            "max_steps must be {MIN_STEPS} to {MAX_STEPS} (got {n})"
        ))),
    }
}

/// The runtime default for `max_steps`, kept inside the allowed range whatever the
/// configured limits say.
pub(crate) fn default_max_steps(limits: &Limits) -> u32 {
    limits.default_max_steps.clamp(MIN_STEPS, MAX_STEPS)
}

/// `[a-z0-9_-]{1,64}`.
pub(crate) fn is_tool_name(name: &str) -> bool {
    (1..=MAX_TOOL_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Checks client input.
pub(crate) fn input(input: &Input, limits: &Limits) -> Result<(), CoreError> {
    if input.text.trim().is_empty() {
        return Err(invalid("text must not be empty".into()));
    }
    let max = limits.max_input_bytes as usize;
    if input.text.len() > max {
        return Err(CoreError::LimitExceeded {
            message: format!(
                "text is {} bytes; at most {max} are allowed (max_input_bytes)",
                input.text.len()
            ),
        });
    }
    if let Some(request_id) = &input.request_id {
        let len = request_id.len();
        if len == 0 || len > MAX_REQUEST_ID_BYTES {
            return Err(invalid(format!(
                "request_id must be 1 to {MAX_REQUEST_ID_BYTES} bytes (got {len})"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_spec() -> WorkerSpec {
        WorkerSpec {
            name: "demo".into(),
            model: "scripted".into(),
            system_prompt: None,
            tools: vec!["search".into(), "calc-2_x".into()],
            max_steps: None,
            context_tokens: None,
        }
    }

    fn message(r: Result<u32, CoreError>) -> String {
        match r {
            Err(CoreError::InvalidRequest { message }) => message,
            other => panic!("expected invalid_request, got {other:?}"),
        }
    }

    #[test]
    fn accepts_a_good_spec_and_applies_the_default() {
        let limits = Limits::default();
        assert_eq!(spec(&ok_spec(), &limits), Ok(limits.default_max_steps));
        let s = WorkerSpec {
            max_steps: Some(64),
            ..ok_spec()
        };
        assert_eq!(spec(&s, &limits), Ok(64));
    }

    #[test]
    fn default_is_clamped() {
        let limits = |n| Limits {
            default_max_steps: n,
            ..Limits::default()
        };
        assert_eq!(default_max_steps(&limits(0)), 1);
        assert_eq!(default_max_steps(&limits(1000)), 64);
    }

    #[test]
    fn each_field_is_named() {
        let l = Limits::default();
        let cases: Vec<(WorkerSpec, &str)> = vec![
            (
                WorkerSpec {
                    name: String::new(),
                    ..ok_spec()
                },
                "name",
            ),
            (
                WorkerSpec {
                    name: "x".repeat(129),
                    ..ok_spec()
                },
                "name",
            ),
            (
                WorkerSpec {
                    name: "a\nb".into(),
                    ..ok_spec()
                },
                "name",
            ),
            (
                WorkerSpec {
                    model: String::new(),
                    ..ok_spec()
                },
                "model",
            ),
            (
                WorkerSpec {
                    model: "m".repeat(129),
                    ..ok_spec()
                },
                "model",
            ),
            (
                WorkerSpec {
                    system_prompt: Some("p".repeat(l.max_input_bytes as usize + 1)),
                    ..ok_spec()
                },
                "system_prompt",
            ),
            (
                WorkerSpec {
                    tools: (0..33).map(|i| format!("t{i}")).collect(),
                    ..ok_spec()
                },
                "tools",
            ),
            (
                WorkerSpec {
                    tools: vec!["Search".into()],
                    ..ok_spec()
                },
                "tools[0]",
            ),
            (
                WorkerSpec {
                    tools: vec![String::new()],
                    ..ok_spec()
                },
                "tools[0]",
            ),
            (
                WorkerSpec {
                    tools: vec!["a".repeat(65)],
                    ..ok_spec()
                },
                "tools[0]",
            ),
            (
                WorkerSpec {
                    tools: vec!["a".into(), "a".into()],
                    ..ok_spec()
                },
                "tools[1]",
            ),
            (
                WorkerSpec {
                    max_steps: Some(0),
                    ..ok_spec()
                },
                "max_steps",
            ),
            (
                WorkerSpec {
                    max_steps: Some(65),
                    ..ok_spec()
                },
                "max_steps",
            ),
        ];
        for (s, field) in cases {
            let m = message(spec(&s, &l));
            assert!(m.starts_with(field), "{m:?} should name {field}");
        }
    }

    #[test]
    fn name_limits_are_bytes() {
        let l = Limits::default();
        let s = WorkerSpec {
            name: "é".repeat(64),
            ..ok_spec()
        };
        assert!(spec(&s, &l).is_ok());
        let s = WorkerSpec {
            name: "é".repeat(65),
            ..ok_spec()
        };
        assert!(spec(&s, &l).is_err());
    }

    #[test]
    fn input_checks() {
        let l = Limits {
            max_input_bytes: 10,
            ..Limits::default()
        };
        let inp = |text: &str, rid: Option<&str>| Input {
            text: text.into(),
            request_id: rid.map(Into::into),
        };
        assert_eq!(input(&inp("hi", None), &l), Ok(()));
        assert_eq!(input(&inp("0123456789", Some("r")), &l), Ok(()));
        assert!(
            matches!(input(&inp("", None), &l), Err(CoreError::InvalidRequest { message }) if message.starts_with("text"))
        );
        assert!(matches!(
            input(&inp(" \n\t", None), &l),
            Err(CoreError::InvalidRequest { .. })
        ));
        assert!(
            matches!(input(&inp("01234567890", None), &l), Err(CoreError::LimitExceeded { message }) if message.starts_with("text"))
        );
        assert!(
            matches!(input(&inp("hi", Some("")), &l), Err(CoreError::InvalidRequest { message }) if message.starts_with("request_id"))
        );
        let long = "r".repeat(129);
        assert!(matches!(
            input(&inp("hi", Some(&long)), &l),
            Err(CoreError::InvalidRequest { .. })
        ));
    }

    #[test]
    fn preview_truncates_on_char_boundaries() {
        assert_eq!(preview("ab"), "\"ab\"");
        let long = "é".repeat(100);
        let p = preview(&long);
        assert!(p.ends_with('…'));
        assert_eq!(p.chars().filter(|c| *c == 'é').count(), 48);
    }
}
