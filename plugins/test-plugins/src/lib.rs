//! Test-only policy plugins for the host's loader tests; never install them. They are
//! the examples of this package, each built as a `cdylib`:
//!
//! | plugin | what it does |
//! |---|---|
//! | `test_policy` | a well-behaved SDK plugin whose behaviour its settings script (redact, deny, panic) |
//! | `garbage` | hand-written: answers what its settings say (bad JSON, an unknown status, a null pointer, …) and never frees |
//! | `wrong_version` | speaks ABI version 2 |
//! | `small_table` | a function table smaller than v1's |
//! | `null_entry` | a table without an `observe` function |
//! | `no_table` | exports the version symbol only |
//!
//! This library holds what the hand-written ones share.

use std::ffi::c_void;

use yoi_policy::abi::{InBytes, OutBytes, PolicyTable, Status};

/// Gives `bytes` away for good: the `garbage` plugin never takes them back.
pub fn leak(bytes: Vec<u8>) -> OutBytes {
    let bytes = Box::leak(bytes.into_boxed_slice());
    OutBytes {
        ptr: bytes.as_mut_ptr(),
        len: bytes.len(),
    }
}

/// Writes `bytes` to `out` (when there is an `out`) and answers `status`.
///
/// # Safety
///
/// `out` is null or valid for a write.
pub unsafe fn answer(out: *mut OutBytes, status: Status, bytes: &[u8]) -> Status {
    if !out.is_null() {
        // SAFETY: the caller's contract.
        unsafe { out.write(leak(bytes.to_vec())) };
    }
    status
}

/// A `free` that frees nothing (every answer here is leaked).
unsafe extern "C" fn never_free(_: OutBytes) {}

/// A `describe` answering the name `misfit`, for tables that should never get this far.
unsafe extern "C" fn describe_misfit(out: *mut OutBytes) -> Status {
    let description = br#"{"name":"misfit","version":"0","sdk_version":"0"}"#;
    // SAFETY: the ABI's contract on `out`.
    unsafe { answer(out, Status::OK, description) }
}

unsafe extern "C" fn refuse_init(_: InBytes, _: *mut *mut c_void, out: *mut OutBytes) -> Status {
    // SAFETY: the ABI's contract on `out`.
    unsafe { answer(out, Status::PLUGIN_ERROR, b"not a real plugin") }
}

unsafe extern "C" fn refuse_call(_: *const c_void, _: InBytes, out: *mut OutBytes) -> Status {
    // SAFETY: the ABI's contract on `out`.
    unsafe { answer(out, Status::PLUGIN_ERROR, b"not a real plugin") }
}

unsafe extern "C" fn release_nothing(_: *mut c_void) {}

/// A complete table of harmless entries that refuse everything and free nothing (every
/// answer here is leaked).
pub const MISFIT: PolicyTable = PolicyTable {
    size: PolicyTable::SIZE,
    free: Some(never_free),
    describe: Some(describe_misfit),
    init: Some(refuse_init),
    observe: Some(refuse_call),
    command: Some(refuse_call),
    release: Some(release_nothing),
};
