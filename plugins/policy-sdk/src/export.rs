//! The plugin side of the ABI for a [`Policy`]: the entry points [`export_policy!`]
//! exports. Each one catches panics, checks what it is given, and answers with a status
//! and bytes it allocated (returned through `free`).
//!
//! [`export_policy!`]: crate::export_policy

use std::any::Any;
use std::cell::Cell;
use std::ffi::c_void;
use std::fmt::Display;
use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::abi::{InBytes, OutBytes, PolicyTable, Status};
use crate::wire::{CommandRequest, Description, ObserveRequest};
use crate::{Item, Policy};

/// Exports a [`Policy`] as a plugin: the ABI version symbol and the function table.
/// Use it once, in a `cdylib` crate:
///
/// ```ignore
/// yoi_policy::export_policy!(MyPolicy);
/// ```
///
/// A plugin must unwind on panic (the default): built with `panic = "abort"` a panic
/// would abort the host, so the macro refuses to compile then.
#[macro_export]
macro_rules! export_policy {
    ($policy:ty) => {
        #[cfg(panic = "abort")]
        compile_error!(
            "a yoi policy plugin must be built with panic = \"unwind\" (the default): \
             with panic = \"abort\" a panic in the plugin would abort the host"
        );

        // The names are `yoi_policy::abi::VERSION_SYMBOL` and `TABLE_SYMBOL`.

        /// The policy ABI major version this plugin speaks.
        #[unsafe(no_mangle)]
        pub extern "C" fn yoi_policy_abi_version() -> u32 {
            $crate::abi::ABI_VERSION
        }

        /// The plugin's policy function table.
        #[unsafe(no_mangle)]
        pub extern "C" fn yoi_policy_table() -> *const $crate::abi::PolicyTable {
            static TABLE: $crate::abi::PolicyTable = $crate::__export::table::<$policy>();
            &TABLE
        }
    };
}

/// The function table of `P`.
pub const fn table<P: Policy>() -> PolicyTable {
    PolicyTable {
        size: PolicyTable::SIZE,
        free: Some(free),
        describe: Some(describe::<P>),
        init: Some(init::<P>),
        observe: Some(observe::<P>),
        command: Some(command::<P>),
        release: Some(release::<P>),
    }
}

/// Why a call did not answer.
struct Failure {
    status: Status,
    message: String,
}

fn bad_input(message: impl Display) -> Failure {
    Failure {
        status: Status::BAD_INPUT,
        message: message.to_string(),
    }
}

fn parse<T: DeserializeOwned>(bytes: Option<&[u8]>) -> Result<T, Failure> {
    let bytes = bytes.ok_or_else(|| bad_input("a null pointer with a nonzero length"))?;
    serde_json::from_slice(bytes).map_err(|e| bad_input(format!("cannot read the request: {e}")))
}

fn json(value: &impl Serialize) -> Result<Vec<u8>, Failure> {
    serde_json::to_vec(value).map_err(|e| Failure {
        status: Status::PLUGIN_ERROR,
        message: format!("cannot encode the answer: {e}"),
    })
}

/// Hands `bytes` to the host; `free` takes them back.
fn into_out(bytes: Vec<u8>) -> OutBytes {
    let bytes = bytes.into_boxed_slice();
    let len = bytes.len();
    OutBytes {
        ptr: Box::into_raw(bytes).cast::<u8>(),
        len,
    }
}

/// Runs `call` with panics caught and writes its answer, or what went wrong, to `out`.
///
/// # Safety
///
/// `out` is null or valid for a write.
unsafe fn answer(out: *mut OutBytes, call: impl FnOnce() -> Result<Vec<u8>, Failure>) -> Status {
    if out.is_null() {
        return Status::BAD_INPUT;
    }
    PANICKED_AT.set(None);
    IN_CALL.set(true);
    let outcome = catch_unwind(AssertUnwindSafe(call));
    IN_CALL.set(false);
    let (status, bytes) = match outcome {
        Ok(Ok(bytes)) => (Status::OK, bytes),
        Ok(Err(failure)) => (failure.status, failure.message.into_bytes()),
        Err(payload) => (Status::PANIC, panic_message(payload).into_bytes()),
    };
    // SAFETY: the caller's contract; `out` is not null.
    unsafe { out.write(into_out(bytes)) };
    status
}

thread_local! {
    /// Whether this thread is inside a call from the host (see [`answer`]).
    static IN_CALL: Cell<bool> = const { Cell::new(false) };
    /// Where this thread's last panic inside a call happened.
    static PANICKED_AT: Cell<Option<String>> = const { Cell::new(None) };
}

/// Wraps the plugin's panic hook (its own: a plugin links its own standard library) so
/// that panics inside calls from the host print nothing and note where they happened.
/// The default hook would print every one, with a backtrace when enabled, to the host's
/// stderr: a plugin panicking on every event would flood it. The host logs them
/// instead, rate-limited, with the message and location the answer carries. Panics
/// elsewhere (the plugin's own threads) go to the previous hook as before.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_CALL.get() {
                PANICKED_AT.set(
                    info.location()
                        .map(|l| format!("{}:{}", l.file(), l.line())),
                );
            } else {
                previous(info);
            }
        }));
    });
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    let mut message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    if let Some(at) = PANICKED_AT.take() {
        message = format!("{message} (at {at})");
    }
    // A payload's destructor could panic in turn: that must not unwind out either.
    contain(move || drop(payload));
    message
}

/// Runs `f` for its effect with any panic stopped here (its payload leaked rather than
/// dropped, since dropping it could panic again).
fn contain(f: impl FnOnce()) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
        std::mem::forget(payload);
    }
}

/// # Safety
///
/// `instance` is null or was made by [`init`] for the same `P` and not yet released.
unsafe fn instance<'a, P: Policy>(instance: *const c_void) -> Result<&'a P, Failure> {
    // SAFETY: the caller's contract.
    unsafe { instance.cast::<P>().as_ref() }.ok_or_else(|| bad_input("a null instance"))
}

unsafe extern "C" fn free(bytes: OutBytes) {
    if bytes.ptr.is_null() {
        return;
    }
    contain(|| {
        let slice = std::ptr::slice_from_raw_parts_mut(bytes.ptr, bytes.len);
        // SAFETY: made by `into_out` from a boxed slice of exactly this length.
        drop(unsafe { Box::from_raw(slice) });
    });
}

unsafe extern "C" fn describe<P: Policy>(out: *mut OutBytes) -> Status {
    // The host's first call into a plugin.
    quiet_panics();
    let call = || {
        json(&Description {
            name: P::NAME.into(),
            version: P::VERSION.into(),
            sdk_version: env!("CARGO_PKG_VERSION").into(),
        })
    };
    // SAFETY: the ABI's contract on `out`.
    unsafe { answer(out, call) }
}

unsafe extern "C" fn init<P: Policy>(
    settings: InBytes,
    instance: *mut *mut c_void,
    out: *mut OutBytes,
) -> Status {
    quiet_panics();
    let call = || {
        if instance.is_null() {
            return Err(bad_input("no place for the instance"));
        }
        // SAFETY: the ABI's contract on `settings`.
        let settings: serde_json::Value = parse(unsafe { settings.as_slice() })?;
        let policy = P::new(settings).map_err(|message| Failure {
            status: Status::PLUGIN_ERROR,
            message,
        })?;
        let interest = json(&policy.interest())?;
        // SAFETY: checked non-null; the ABI's contract makes it writable.
        unsafe { instance.write(Box::into_raw(Box::new(policy)).cast::<c_void>()) };
        Ok(interest)
    };
    // SAFETY: the ABI's contract on `out`.
    unsafe { answer(out, call) }
}

unsafe extern "C" fn observe<P: Policy>(
    instance: *const c_void,
    request: InBytes,
    out: *mut OutBytes,
) -> Status {
    // SAFETY: the ABI's contract on the arguments.
    unsafe {
        decide(
            instance,
            request,
            out,
            |policy: &P, request: ObserveRequest| {
                let principal = &request.principal;
                match request.item {
                    Item::Event(item) => json(&policy.observe_event(principal, item)),
                    Item::Snapshot(item) => json(&policy.observe_snapshot(principal, item)),
                    Item::Transcript(item) => json(&policy.observe_transcript(principal, item)),
                    Item::Workers(item) => json(&policy.observe_workers(principal, item)),
                    Item::Runtimes(item) => json(&policy.observe_runtimes(principal, item)),
                }
            },
        )
    }
}

unsafe extern "C" fn command<P: Policy>(
    instance: *const c_void,
    request: InBytes,
    out: *mut OutBytes,
) -> Status {
    // SAFETY: the ABI's contract on the arguments.
    unsafe {
        decide(
            instance,
            request,
            out,
            |policy: &P, request: CommandRequest| {
                json(&policy.command(&request.principal, &request.command))
            },
        )
    }
}

/// A decision call: the instance and the request read, `f` run, its answer written.
///
/// # Safety
///
/// The ABI's contract: `instance` made by [`init`] for `P`, `request` readable for the
/// call, `out` null or writable.
unsafe fn decide<P: Policy, R: DeserializeOwned>(
    instance: *const c_void,
    request: InBytes,
    out: *mut OutBytes,
    f: impl FnOnce(&P, R) -> Result<Vec<u8>, Failure>,
) -> Status {
    let call = || {
        // SAFETY: the caller's contract.
        let policy = unsafe { self::instance::<P>(instance) }?;
        f(policy, parse(unsafe { request.as_slice() })?)
    };
    // SAFETY: the caller's contract.
    unsafe { answer(out, call) }
}

unsafe extern "C" fn release<P: Policy>(instance: *mut c_void) {
    if instance.is_null() {
        return;
    }
    contain(|| {
        // SAFETY: made by `init` as a `Box<P>`; the host releases it once.
        drop(unsafe { Box::from_raw(instance.cast::<P>()) });
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::InBytes;
    use crate::{Command, CommandVerdict, EventItem, Interest, Principal, Role, Verdict};
    use std::ptr::null_mut;
    use yoi_protocol::Event;

    /// Denies reasoning to observers; panics on the text "boom" and on `stop`.
    struct Test;

    impl Policy for Test {
        const NAME: &'static str = "test";
        const VERSION: &'static str = "1.2.3";

        fn new(settings: serde_json::Value) -> Result<Self, String> {
            match settings.get("refuse") {
                Some(_) => Err("refused as asked".into()),
                None => Ok(Test),
            }
        }

        fn interest(&self) -> Interest {
            Interest::nothing()
                .for_roles([Role::Observer])
                .events(["text_delta"])
                .commands()
        }

        fn observe_event(&self, _: &Principal, item: EventItem) -> Verdict<Event> {
            match item.event {
                Event::TextDelta { text, .. } if text == "boom" => panic!("boom at {}", item.seq),
                _ => Verdict::Deny,
            }
        }

        fn command(&self, _: &Principal, command: &Command) -> CommandVerdict {
            match command {
                Command::Stop { .. } => panic!("{}", String::from("stop!")),
                _ => CommandVerdict::deny("read only"),
            }
        }
    }

    const TABLE: PolicyTable = table::<Test>();

    /// The status and the output of one call, the output freed through the table.
    fn call(f: impl FnOnce(*mut OutBytes) -> Status) -> (Status, String) {
        let mut out = OutBytes::EMPTY;
        let status = f(&mut out);
        let text = if out.ptr.is_null() {
            String::new()
        } else {
            // SAFETY: the plugin's answer: `len` bytes at `ptr`, until freed.
            let bytes = unsafe { std::slice::from_raw_parts(out.ptr, out.len) };
            String::from_utf8(bytes.to_vec()).unwrap()
        };
        unsafe { TABLE.free.unwrap()(out) };
        (status, text)
    }

    fn make(settings: &str) -> (Status, String, *mut c_void) {
        let mut instance = null_mut();
        let (status, text) = call(|out| unsafe {
            TABLE.init.unwrap()(InBytes::new(settings.as_bytes()), &mut instance, out)
        });
        (status, text, instance)
    }

    fn observe(instance: *mut c_void, request: &[u8]) -> (Status, String) {
        call(|out| unsafe { TABLE.observe.unwrap()(instance, InBytes::new(request), out) })
    }

    fn event_request(text: &str) -> Vec<u8> {
        let event = serde_json::to_string(&Event::TextDelta {
            run_id: "r_1".into(),
            text: text.into(),
        })
        .unwrap();
        let mut out = Vec::new();
        let head = crate::wire::EventHead {
            runtime_id: "local",
            seq: 5,
            worker_id: Some("w_1"),
            at_ms: 1,
        };
        let principal = Principal::new("o", Role::Observer);
        crate::wire::write_event_request(&mut out, &principal, head, &event);
        out
    }

    #[test]
    fn describe_and_init_answer_json() {
        let (status, text) = call(|out| unsafe { TABLE.describe.unwrap()(out) });
        assert_eq!(status, Status::OK);
        let description: Description = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (description.name.as_str(), description.version.as_str()),
            ("test", "1.2.3")
        );

        let (status, text, instance) = make("{}");
        assert_eq!(status, Status::OK);
        let interest: Interest = serde_json::from_str(&text).unwrap();
        assert!(interest.applies_to(Role::Observer) && !interest.applies_to(Role::Owner));
        assert!(interest.wants_event("text_delta") && !interest.wants_event("reasoning_delta"));
        unsafe { TABLE.release.unwrap()(instance) };
    }

    #[test]
    fn refused_and_unreadable_settings_have_their_own_statuses() {
        let (status, text, instance) = make(r#"{"refuse":true}"#);
        assert_eq!(
            (status, text.as_str()),
            (Status::PLUGIN_ERROR, "refused as asked")
        );
        assert!(instance.is_null());
        let (status, text, instance) = make("{not json");
        assert_eq!(status, Status::BAD_INPUT);
        assert!(text.contains("cannot read"), "{text}");
        assert!(instance.is_null());
    }

    #[test]
    fn panics_are_caught_and_answered_with_their_message() {
        let (_, _, instance) = make("{}");
        let (status, text) = observe(instance, &event_request("boom"));
        assert_eq!(status, Status::PANIC);
        assert!(text.starts_with("boom at 5 (at "), "{text}");
        assert!(text.contains("export.rs:"), "where it panicked: {text}");
        // The instance still answers afterwards.
        let (status, text) = observe(instance, &event_request("fine"));
        assert_eq!(
            (status, text.as_str()),
            (Status::OK, r#"{"decision":"deny"}"#)
        );

        let command = |command: Command| {
            let request = serde_json::to_vec(&crate::wire::CommandRequestRef {
                principal: &Principal::new("o", Role::Observer),
                command: &command,
            })
            .unwrap();
            call(|out| unsafe { TABLE.command.unwrap()(instance, InBytes::new(&request), out) })
        };
        let stop = Command::Stop {
            runtime: "local".into(),
            worker: "w_1".into(),
        };
        let (status, text) = command(stop);
        assert_eq!(status, Status::PANIC);
        assert!(text.starts_with("stop! (at "), "{text}");
        let (status, text) = command(Command::ListRuntimes);
        assert_eq!(status, Status::OK);
        let verdict: CommandVerdict = serde_json::from_str(&text).unwrap();
        assert_eq!(verdict, CommandVerdict::deny("read only"));
        unsafe { TABLE.release.unwrap()(instance) };
    }

    #[test]
    fn bad_requests_and_null_pointers_are_bad_input() {
        let (_, _, instance) = make("{}");
        let (status, text) = observe(instance, br#"{"principal":{}}"#);
        assert_eq!(status, Status::BAD_INPUT, "{text}");
        let (status, _) = observe(null_mut(), &event_request("x"));
        assert_eq!(status, Status::BAD_INPUT);
        let dangling = InBytes {
            ptr: std::ptr::null(),
            len: 3,
        };
        let (status, _) = call(|out| unsafe { TABLE.observe.unwrap()(instance, dangling, out) });
        assert_eq!(status, Status::BAD_INPUT);
        // No place to answer: refused without touching anything.
        let request = event_request("x");
        let status =
            unsafe { TABLE.observe.unwrap()(instance, InBytes::new(&request), null_mut()) };
        assert_eq!(status, Status::BAD_INPUT);
        unsafe { TABLE.release.unwrap()(instance) };
    }
}
