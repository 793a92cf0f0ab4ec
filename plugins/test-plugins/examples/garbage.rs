//! A hand-written v1 plugin that answers `observe` and `command` with whatever its
//! settings pick (`{"answer": MODE}`), and never frees anything:
//!
//! | mode | answer |
//! |---|---|
//! | `allow` | a valid allow (so only the leak is wrong) |
//! | `not_json` | `OK` with bytes that are not JSON |
//! | `not_utf8` | `OK` with bytes that are not UTF-8 |
//! | `wrong_shape` | `OK` with JSON that is no verdict |
//! | `redact_wrong_type` | `OK` with a redaction whose item is not of the item's type |
//! | `bad_status` | status 77 |
//! | `null_answer` | `OK` with a null pointer and a nonzero length |

use std::ffi::c_void;

use yoi_policy::abi::{ABI_VERSION, InBytes, OutBytes, PolicyTable, Status};
use yoi_policy_test_plugins::{MISFIT, answer};

#[unsafe(no_mangle)]
pub extern "C" fn yoi_policy_abi_version() -> u32 {
    ABI_VERSION
}

/// `free` and `release` do nothing (the misfit's).
static TABLE: PolicyTable = PolicyTable {
    describe: Some(describe),
    init: Some(init),
    observe: Some(call),
    command: Some(call),
    ..MISFIT
};

#[unsafe(no_mangle)]
pub extern "C" fn yoi_policy_table() -> *const PolicyTable {
    &TABLE
}

unsafe extern "C" fn describe(out: *mut OutBytes) -> Status {
    let description = br#"{"name":"garbage","version":"0.0.1","sdk_version":"0"}"#;
    // SAFETY: the ABI's contract on `out`.
    unsafe { answer(out, Status::OK, description) }
}

const MODES: [&str; 7] = [
    "allow",
    "not_json",
    "not_utf8",
    "wrong_shape",
    "redact_wrong_type",
    "bad_status",
    "null_answer",
];

/// The instance is the index of its mode in `MODES`, boxed (and leaked: this plugin
/// frees nothing).
unsafe extern "C" fn init(
    settings: InBytes,
    instance: *mut *mut c_void,
    out: *mut OutBytes,
) -> Status {
    // SAFETY: the ABI's contract on `settings`.
    let settings = unsafe { settings.as_slice() }.unwrap_or_default();
    let mode = serde_json::from_slice::<serde_json::Value>(settings)
        .ok()
        .and_then(|v| v.get("answer")?.as_str().map(str::to_owned))
        .and_then(|mode| MODES.iter().position(|m| *m == mode));
    let Some(mode) = mode else {
        let message = format!("settings must be {{\"answer\": one of {MODES:?}}}");
        // SAFETY: the ABI's contract on `out`.
        return unsafe { answer(out, Status::PLUGIN_ERROR, message.as_bytes()) };
    };
    // SAFETY: the ABI's contract on `instance`.
    unsafe { instance.write(Box::into_raw(Box::new(mode)).cast()) };
    // SAFETY: the ABI's contract on `out`.
    unsafe { answer(out, Status::OK, b"{}") }
}

unsafe extern "C" fn call(instance: *const c_void, _: InBytes, out: *mut OutBytes) -> Status {
    // SAFETY: made by `init`.
    let mode = MODES[unsafe { *instance.cast::<usize>() }];
    let (status, bytes): (Status, &[u8]) = match mode {
        "allow" => (Status::OK, br#"{"decision":"allow"}"#),
        "not_json" => (Status::OK, b"this is not json"),
        "not_utf8" => (Status::OK, b"\xff\xfe\xfd"),
        "wrong_shape" => (Status::OK, br#"{"decision":"maybe"}"#),
        "redact_wrong_type" => (
            Status::OK,
            br#"{"decision":"redact","item":{"no":"event"}}"#,
        ),
        "bad_status" => (Status(77), b"??"),
        _ => {
            // SAFETY: the ABI's contract on `out`.
            unsafe {
                out.write(OutBytes {
                    ptr: std::ptr::null_mut(),
                    len: 5,
                })
            };
            return Status::OK;
        }
    };
    // SAFETY: the ABI's contract on `out`.
    unsafe { answer(out, status, bytes) }
}
