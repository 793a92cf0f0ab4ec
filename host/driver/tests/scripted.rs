//! The scripted model: plan determinism, streaming, recognised requests, tool results.

use std::time::Duration;

use proptest::prelude::*;
use tokio::sync::mpsc;
use yoi_driver::scripted::{ReceiverDropped, Reply};
use yoi_driver::{Provider, ScriptedConfig, ScriptedModel};
use yoi_protocol::{Completion, FinishReason, Message, ModelRequest, Role, ToolCall};

const ALL_TOOLS: [&str; 4] = ["list_dir", "read_file", "write_file", "search"];

fn msg(role: Role, content: &str) -> Message {
    Message {
        role,
        content: content.to_string(),
        reasoning: None,
        tool_calls: Vec::new(),
        tool_call_id: None,
        is_error: false,
        run_id: "r_1".to_string(),
    }
}

fn request(messages: Vec<Message>, tools: &[&str]) -> ModelRequest {
    ModelRequest {
        call_id: 7,
        worker_id: "w_1".to_string(),
        run_id: "r_1".to_string(),
        step: 1,
        model: "scripted".to_string(),
        system_prompt: Some("You are helpful.".to_string()),
        messages,
        tools: tools.iter().map(|t| t.to_string()).collect(),
    }
}

fn ask(text: &str, tools: &[&str]) -> ModelRequest {
    request(vec![msg(Role::User, text)], tools)
}

fn model() -> ScriptedModel {
    ScriptedModel::default()
}

/// What a plan says, reassembled.
#[derive(Debug, Default)]
struct Assembled {
    reasoning: String,
    text: String,
    reasoning_deltas: usize,
    text_deltas: usize,
    call_id: Option<String>,
    call_name: Option<String>,
    call_args: String,
    call_deltas: usize,
    usage: Option<yoi_protocol::Usage>,
    finish: Option<FinishReason>,
}

fn assemble(plan: &[Completion]) -> Assembled {
    let mut a = Assembled::default();
    let n = plan.len();
    assert!(n >= 2, "a plan ends with usage and done");
    assert!(matches!(plan[n - 2], Completion::Usage { .. }));
    assert!(matches!(plan[n - 1], Completion::ModelDone { .. }));
    let mut seen_text_or_call = false;
    for c in plan {
        assert_eq!(c.call_id(), 7);
        match c {
            Completion::ReasoningDelta { text, .. } => {
                assert!(!seen_text_or_call, "reasoning comes first");
                a.reasoning.push_str(text);
                a.reasoning_deltas += 1;
            }
            Completion::TextDelta { text, .. } => {
                seen_text_or_call = true;
                a.text.push_str(text);
                a.text_deltas += 1;
            }
            Completion::ToolCallDelta {
                index,
                id,
                name,
                arguments,
                ..
            } => {
                seen_text_or_call = true;
                assert_eq!(*index, 0);
                if a.call_deltas == 0 {
                    a.call_id = id.clone();
                    a.call_name = name.clone();
                } else {
                    assert!(id.is_none() && name.is_none());
                }
                a.call_args.push_str(arguments);
                a.call_deltas += 1;
            }
            Completion::Usage { usage, .. } => a.usage = Some(*usage),
            Completion::ModelDone { finish_reason, .. } => a.finish = Some(*finish_reason),
            other => panic!("unexpected completion {other:?}"),
        }
    }
    a
}

#[test]
fn plan_is_deterministic() {
    let m = model();
    for text in ["hello there", "read notes.md", "list files", "stream 5"] {
        let req = ask(text, &ALL_TOOLS);
        assert_eq!(m.plan(&req), m.plan(&req));
        assert_eq!(m.plan(&req), ScriptedModel::default().plan(&req.clone()));
    }
}

#[test]
fn deltas_concatenate_to_the_reply() {
    let m = model();
    let req = ask("Hello,   scripted\tmodel!\n  How are you?", &ALL_TOOLS);
    let reply: Reply = m.reply(&req);
    let a = assemble(&m.plan(&req));
    assert_eq!(a.text, reply.text);
    assert_eq!(a.reasoning, reply.reasoning);
    assert!(a.text_deltas > 5, "streamed token by token");
    assert!(a.reasoning_deltas > 5);
    assert!(a.text.contains("scripted demo model"));
    assert!(
        a.text.contains("Hello,   scripted\tmodel!"),
        "echoes the input: {}",
        a.text
    );
    assert_eq!(a.finish, Some(FinishReason::Stop));
}

#[test]
fn usage_counts_words_and_deltas() {
    let m = model();
    let req = request(
        vec![
            msg(Role::User, "one two three"),
            msg(Role::Assistant, "four five"),
            msg(Role::User, "six"),
        ],
        &[],
    );
    let plan = m.plan(&req);
    let a = assemble(&plan);
    let usage = a.usage.unwrap();
    assert_eq!(usage.input_tokens, 3 + 6); // "You are helpful." + messages
    assert_eq!(usage.output_tokens as usize, plan.len() - 2);
}

#[test]
fn reasoning_can_be_turned_off() {
    let m = ScriptedModel::new(ScriptedConfig {
        reasoning: false,
        ..ScriptedConfig::default()
    });
    for text in ["hi", "read a.txt"] {
        let a = assemble(&m.plan(&ask(text, &ALL_TOOLS)));
        assert_eq!(a.reasoning_deltas, 0);
    }
}

#[test]
fn stream_n_gives_exactly_n_text_deltas() {
    let m = model();
    for n in [0usize, 1, 2, 200, 2000] {
        let a = assemble(&m.plan(&ask(&format!("stream {n}"), &[])));
        assert_eq!(a.text_deltas, n);
        assert_eq!(a.finish, Some(FinishReason::Stop));
    }
    let capped = ScriptedModel::new(ScriptedConfig {
        max_stream_tokens: 10,
        reasoning: false,
        ..ScriptedConfig::default()
    });
    let plan = capped.plan(&ask("STREAM 1000000000", &[]));
    assert_eq!(assemble(&plan).text_deltas, 10);
    assert_eq!(plan.len(), 12);
}

#[test]
fn filler_replaces_the_greeting() {
    let m = ScriptedModel::new(ScriptedConfig {
        filler: Some(300),
        ..ScriptedConfig::default()
    });
    assert_eq!(assemble(&m.plan(&ask("hello", &[]))).text_deltas, 300);
    // Tool requests are unchanged.
    let a = assemble(&m.plan(&ask("ls", &ALL_TOOLS)));
    assert_eq!(a.call_name.as_deref(), Some("list_dir"));
}

#[test]
fn recognised_requests_call_tools() {
    let m = model();
    let cases = [
        ("list files", "list_dir", r#"{"path":"."}"#),
        ("ls", "list_dir", r#"{"path":"."}"#),
        (
            "Could you LIST FILES please?",
            "list_dir",
            r#"{"path":"."}"#,
        ),
        ("read notes.md", "read_file", r#"{"path":"notes.md"}"#),
        (
            "Read \"My File.txt\"",
            "read_file",
            r#"{"path":"My File.txt"}"#,
        ),
        (
            "write todo.txt: buy milk",
            "write_file",
            r#"{"path":"todo.txt","content":"buy milk"}"#,
        ),
        (
            "WRITE dir/a.md: # Title\nbody: \"quoted\"",
            "write_file",
            r##"{"path":"dir/a.md","content":"# Title\nbody: \"quoted\""}"##,
        ),
        ("search needle", "search", r#"{"query":"needle"}"#),
        ("Search  Hay Stack", "search", r#"{"query":"Hay Stack"}"#),
    ];
    for (text, tool, args) in cases {
        let plan = m.plan(&ask(text, &ALL_TOOLS));
        let a = assemble(&plan);
        assert_eq!(a.call_name.as_deref(), Some(tool), "{text}");
        assert_eq!(a.call_args, args, "{text}");
        assert_eq!(a.call_id.as_deref(), Some("call_1"));
        assert!(a.call_deltas >= 3, "id+name, then arguments in pieces");
        assert_eq!(a.text_deltas, 0);
        assert_eq!(a.finish, Some(FinishReason::ToolCalls));
        serde_json::from_str::<serde_json::Value>(&a.call_args).unwrap();
    }
}

#[test]
fn a_tool_that_is_not_enabled_is_explained() {
    let m = model();
    for (text, tool) in [
        ("ls", "list_dir"),
        ("read a", "read_file"),
        ("write a: b", "write_file"),
        ("search x", "search"),
    ] {
        let others: Vec<&str> = ALL_TOOLS.iter().copied().filter(|t| *t != tool).collect();
        for tools in [&[][..], &others[..]] {
            let a = assemble(&m.plan(&ask(text, tools)));
            assert_eq!(a.call_deltas, 0, "{text}");
            assert_eq!(a.finish, Some(FinishReason::Stop));
            assert!(a.text.contains(&format!("`{tool}`")), "{}", a.text);
            assert!(a.text.contains("not enabled"), "{}", a.text);
        }
    }
}

#[test]
fn only_the_last_user_message_counts() {
    let m = model();
    let req = request(
        vec![
            msg(Role::User, "read old.txt"),
            msg(Role::Assistant, "done"),
            msg(Role::User, "thanks"),
        ],
        &ALL_TOOLS,
    );
    let a = assemble(&m.plan(&req));
    assert_eq!(a.call_deltas, 0);
    assert!(a.text.contains("thanks"));
}

fn tool_exchange(output: &str, is_error: bool) -> Vec<Message> {
    let mut call = msg(Role::Assistant, "");
    call.tool_calls = vec![ToolCall {
        id: "call_1".to_string(),
        name: "read_file".to_string(),
        arguments: r#"{"path":"a.txt"}"#.to_string(),
    }];
    let mut result = msg(Role::Tool, output);
    result.tool_call_id = Some("call_1".to_string());
    result.is_error = is_error;
    vec![msg(Role::User, "read a.txt"), call, result]
}

#[test]
fn answers_with_the_tool_result() {
    let m = model();
    let a = assemble(&m.plan(&request(
        tool_exchange("line one\nline two", false),
        &ALL_TOOLS,
    )));
    assert_eq!(a.finish, Some(FinishReason::Stop));
    assert_eq!(a.call_deltas, 0);
    assert!(a.text.contains("`read_file`"), "{}", a.text);
    assert!(a.text.contains("line one\nline two"), "{}", a.text);

    let a = assemble(&m.plan(&request(tool_exchange("no such file", true), &ALL_TOOLS)));
    assert!(a.text.contains("error"), "{}", a.text);
    assert!(a.text.contains("no such file"));
}

#[test]
fn long_tool_results_are_quoted_in_part() {
    let m = ScriptedModel::new(ScriptedConfig {
        quote_limit: 100,
        ..ScriptedConfig::default()
    });
    let long = "é".repeat(1000);
    let a = assemble(&m.plan(&request(tool_exchange(&long, false), &ALL_TOOLS)));
    assert!(a.text.len() < 400, "{}", a.text.len());
    assert!(a.text.contains("more bytes not shown"));
}

#[test]
fn next_tool_call_ids_count_up() {
    let m = model();
    let mut messages = tool_exchange("x", false);
    messages.push(msg(Role::Assistant, "Here it is"));
    messages.push(msg(Role::User, "list files"));
    let a = assemble(&m.plan(&request(messages, &ALL_TOOLS)));
    assert_eq!(a.call_id.as_deref(), Some("call_2"));
}

#[test]
fn empty_transcript_still_answers() {
    let a = assemble(&model().plan(&request(Vec::new(), &[])));
    assert_eq!(a.finish, Some(FinishReason::Stop));
    assert!(a.text.contains("did not say anything"));
}

async fn collect(mut rx: mpsc::Receiver<Completion>) -> Vec<Completion> {
    let mut out = Vec::new();
    while let Some(c) = rx.recv().await {
        out.push(c);
    }
    out
}

#[tokio::test]
async fn zero_delay_stream_yields_exactly_the_plan() {
    let m = model();
    for text in ["hello", "read a.txt", "stream 500"] {
        let req = ask(text, &ALL_TOOLS);
        let (tx, rx) = mpsc::channel(4);
        let reader = tokio::spawn(collect(rx));
        m.stream(&req, &tx, Duration::ZERO).await.unwrap();
        drop(tx);
        assert_eq!(reader.await.unwrap(), m.plan(&req));
    }
}

#[tokio::test(start_paused = true)]
async fn delayed_stream_yields_exactly_the_plan() {
    let m = model();
    let req = ask("hello there", &[]);
    let (tx, rx) = mpsc::channel(4);
    let reader = tokio::spawn(collect(rx));
    m.stream(&req, &tx, Duration::from_millis(50))
        .await
        .unwrap();
    drop(tx);
    assert_eq!(reader.await.unwrap(), m.plan(&req));
}

/// Under tokio's paused clock: deltas are exactly `delay` apart (the first at once), and
/// usage and the end follow the last delta without waiting.
#[tokio::test(start_paused = true)]
async fn deltas_are_paced_by_the_token_delay() {
    let m = model();
    let req = ask("stream 5", &[]);
    let (tx, mut rx) = mpsc::channel(64);
    let started = tokio::time::Instant::now();
    let reader = tokio::spawn(async move {
        let mut at = Vec::new();
        while let Some(c) = rx.recv().await {
            at.push((c, started.elapsed()));
        }
        at
    });
    m.stream(&req, &tx, Duration::from_millis(30))
        .await
        .unwrap();
    drop(tx);
    let got = reader.await.unwrap();
    let deltas: Vec<Duration> = got
        .iter()
        .filter(|(c, _)| {
            matches!(
                c,
                Completion::TextDelta { .. } | Completion::ReasoningDelta { .. }
            )
        })
        .map(|(_, at)| *at)
        .collect();
    assert!(deltas.len() >= 5, "{got:?}");
    for (i, at) in deltas.iter().enumerate() {
        assert_eq!(*at, Duration::from_millis(30 * i as u64), "delta {i}");
    }
    let last = *deltas.last().unwrap();
    assert!(
        got.iter()
            .skip_while(|(_, at)| *at < last)
            .all(|(_, at)| *at == last)
    );
}

#[tokio::test]
async fn provider_call_streams_the_plan() {
    let m = model();
    let req = ask("write x.txt: y", &ALL_TOOLS);
    let provider: &dyn Provider = &m;
    let (tx, rx) = mpsc::channel(8);
    let reader = tokio::spawn(collect(rx));
    provider.call(req.clone(), tx).await;
    assert_eq!(reader.await.unwrap(), m.plan(&req));
}

#[tokio::test]
async fn stream_stops_when_the_receiver_is_dropped() {
    let m = model();
    let req = ask("stream 10000", &[]);
    let (tx, mut rx) = mpsc::channel(1);
    let reader = tokio::spawn(async move {
        for _ in 0..3 {
            rx.recv().await.unwrap();
        }
        // rx dropped here
    });
    assert_eq!(
        m.stream(&req, &tx, Duration::ZERO).await,
        Err(ReceiverDropped)
    );
    reader.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn stream_stops_while_waiting_between_deltas() {
    let m = model();
    let req = ask("stream 10", &[]);
    let (tx, mut rx) = mpsc::channel(16);
    let first = tokio::spawn(async move {
        let c = rx.recv().await.unwrap();
        drop(rx);
        c
    });
    // An hour between deltas on a paused clock: had the stream slept it out, the
    // clock would have been advanced by an hour.
    let start = tokio::time::Instant::now();
    let result = m.stream(&req, &tx, Duration::from_secs(3600)).await;
    assert_eq!(result, Err(ReceiverDropped));
    assert!(
        start.elapsed() < Duration::from_secs(3600),
        "noticed during the wait"
    );
    assert!(matches!(
        first.await.unwrap(),
        Completion::ReasoningDelta { .. }
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn plan_never_panics(
        texts in proptest::collection::vec((0u8..3, any::<String>(), proptest::option::of("[a-z_0-9]{1,8}"), any::<bool>()), 0..6),
        prefix in prop_oneof![Just(""), Just("read "), Just("write "), Just("search "), Just("stream "), Just("ls"), Just("list files ")],
        tail in any::<String>(),
        tools in proptest::collection::vec(prop_oneof![Just("list_dir".to_string()), Just("read_file".to_string()), Just("write_file".to_string()), Just("search".to_string()), any::<String>()], 0..5),
        system in proptest::option::of(any::<String>()),
        reasoning in any::<bool>(),
        quote_limit in 0usize..50,
    ) {
        let mut messages: Vec<Message> = texts.into_iter().map(|(role, content, id, is_error)| {
            let role = match role { 0 => Role::User, 1 => Role::Assistant, _ => Role::Tool };
            let mut m = msg(role, &content);
            m.tool_call_id = id;
            m.is_error = is_error;
            m
        }).collect();
        messages.push(msg(Role::User, &format!("{prefix}{tail}")));
        let mut req = request(messages, &[]);
        req.tools = tools;
        req.system_prompt = system;
        let m = ScriptedModel::new(ScriptedConfig { reasoning, quote_limit, max_stream_tokens: 1000, ..ScriptedConfig::default() });
        let plan = m.plan(&req);
        let a = assemble(&plan);
        prop_assert_eq!(&a.text, &m.reply(&req).text);
        if a.call_deltas > 0 {
            prop_assert_eq!(a.finish, Some(FinishReason::ToolCalls));
            prop_assert!(serde_json::from_str::<serde_json::Value>(&a.call_args).is_ok());
        }
        prop_assert_eq!(plan, m.plan(&req));
    }
}

/// The way the runtime's driver uses a provider: shared behind `Arc<dyn Provider>`,
/// called inside a spawned task (so the future must be `Send`).
#[tokio::test]
async fn works_as_a_shared_provider_in_a_spawned_task() {
    let provider: std::sync::Arc<dyn Provider> = std::sync::Arc::new(model());
    let req = ask("search needle", &ALL_TOOLS);
    let expected = model().plan(&req);
    let (tx, rx) = mpsc::channel(2);
    let task = tokio::spawn(async move {
        let mut call = Box::pin(provider.call(req, tx));
        (&mut call).await;
    });
    assert_eq!(collect(rx).await, expected);
    task.await.unwrap();
}
