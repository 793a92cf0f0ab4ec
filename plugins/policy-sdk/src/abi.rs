//! The binary interface between a host and a policy plugin, version 1.
//!
//! For loaders, and for plugins written without [`export_policy!`](crate::export_policy)
//! (in Rust by hand, or in another language). Everything here is `#[repr(C)]` and
//! crosses the boundary by value or by pointer; the payloads are JSON (see
//! [`wire`](crate::wire)).
//!
//! # Protocol
//!
//! 1. The host resolves [`VERSION_SYMBOL`] and calls it before anything else. A plugin
//!    answering another major version than [`ABI_VERSION`] is refused untouched.
//! 2. The host resolves [`TABLE_SYMBOL`] and reads [`PolicyTable::size`] first: the table
//!    is append-only within a major version, so a table at least as large as the host's
//!    is usable (the host reads only the fields it knows) and a smaller one is refused.
//! 3. `describe` (name and version), then `init` once per configured use with that use's
//!    settings, giving an instance; `observe` and `command` on the instance, from any
//!    thread, concurrently; `release` when the host drops the instance.
//!
//! Every call returns a [`Status`]. Bytes going in ([`InBytes`]) are the host's and are
//! only borrowed for the call. Bytes coming out ([`OutBytes`]) are the plugin's: the
//! host reads them, then hands them back to the table's `free`. On [`Status::OK`] they
//! are the JSON answer; on any other status, a UTF-8 message saying what went wrong.
//! No panic may cross the boundary: every entry point catches unwinding itself.

use std::ffi::c_void;

/// The major version of this ABI. A plugin built for another major version is refused.
pub const ABI_VERSION: u32 = 1;

/// `extern "C" fn() -> u32` ([`AbiVersionFn`]): the plugin's ABI major version.
pub const VERSION_SYMBOL: &str = "yoi_policy_abi_version";

/// `extern "C" fn() -> *const PolicyTable` ([`TableFn`]): the plugin's function table,
/// a `'static` the host never frees.
pub const TABLE_SYMBOL: &str = "yoi_policy_table";

/// The type of [`VERSION_SYMBOL`].
pub type AbiVersionFn = unsafe extern "C" fn() -> u32;

/// The type of [`TABLE_SYMBOL`].
pub type TableFn = unsafe extern "C" fn() -> *const PolicyTable;

/// The outcome of one call.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status(pub u32);

impl Status {
    /// The output is the call's JSON answer.
    pub const OK: Status = Status(0);
    /// The plugin refused or failed (e.g. settings it does not accept); the output is
    /// its message.
    pub const PLUGIN_ERROR: Status = Status(1);
    /// The plugin panicked; the panic was caught inside it. The output is the panic's
    /// message.
    pub const PANIC: Status = Status(2);
    /// The plugin could not read what the host sent (null pointers, JSON it does not
    /// understand); the output is its message.
    pub const BAD_INPUT: Status = Status(3);
}

/// Bytes the host lends the plugin for the duration of one call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct InBytes {
    pub ptr: *const u8,
    pub len: usize,
}

impl InBytes {
    /// Borrows `bytes` for a call.
    pub fn new(bytes: &[u8]) -> Self {
        InBytes {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    /// The bytes, or `None` for a null pointer with a nonzero length.
    ///
    /// # Safety
    ///
    /// A non-null `ptr` must point at `len` readable bytes that stay valid and unchanged
    /// for `'a`.
    pub unsafe fn as_slice<'a>(self) -> Option<&'a [u8]> {
        if self.ptr.is_null() {
            return (self.len == 0).then_some(&[][..]);
        }
        // SAFETY: the caller's contract.
        Some(unsafe { std::slice::from_raw_parts(self.ptr, self.len) })
    }
}

/// Bytes the plugin allocated and gives the host; the host returns them to the table's
/// `free` once read. A null `ptr` means no bytes (and `free` need not be called).
#[repr(C)]
#[derive(Debug)]
pub struct OutBytes {
    pub ptr: *mut u8,
    pub len: usize,
}

impl OutBytes {
    /// No bytes.
    pub const EMPTY: OutBytes = OutBytes {
        ptr: std::ptr::null_mut(),
        len: 0,
    };
}

/// Frees bytes the plugin handed out.
pub type FreeFn = unsafe extern "C" fn(bytes: OutBytes);
/// Writes the plugin's [`Description`](crate::wire::Description) JSON to `out`.
pub type DescribeFn = unsafe extern "C" fn(out: *mut OutBytes) -> Status;
/// Creates an instance from `settings` (JSON). On [`Status::OK`] `*instance` is set and
/// `out` holds the instance's [`Interest`](crate::Interest) JSON; otherwise `out` holds
/// why the settings were refused.
pub type InitFn = unsafe extern "C" fn(
    settings: InBytes,
    instance: *mut *mut c_void,
    out: *mut OutBytes,
) -> Status;
/// Decides one observed item: `request` is an
/// [`ObserveRequest`](crate::wire::ObserveRequest), the answer a
/// [`Verdict`](crate::Verdict).
pub type ObserveFn =
    unsafe extern "C" fn(instance: *const c_void, request: InBytes, out: *mut OutBytes) -> Status;
/// Decides one command: `request` is a [`CommandRequest`](crate::wire::CommandRequest),
/// the answer a [`CommandVerdict`](crate::CommandVerdict).
pub type CommandFn =
    unsafe extern "C" fn(instance: *const c_void, request: InBytes, out: *mut OutBytes) -> Status;
/// Drops an instance made by `init`. Called once, when no call on it is in flight.
pub type ReleaseFn = unsafe extern "C" fn(instance: *mut c_void);

/// The plugin's entry points, v1. Append-only: later minor versions add fields at the
/// end and a larger `size`. Entries are `Option`s so that a null entry in a hand-made
/// table is a refusal the loader can report, not undefined behaviour.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PolicyTable {
    /// `size_of::<PolicyTable>()` as the plugin was built: read before anything else.
    pub size: usize,
    pub free: Option<FreeFn>,
    pub describe: Option<DescribeFn>,
    pub init: Option<InitFn>,
    pub observe: Option<ObserveFn>,
    pub command: Option<CommandFn>,
    pub release: Option<ReleaseFn>,
}

impl PolicyTable {
    /// The size of the v1 table this crate defines: the smallest a host accepts.
    pub const SIZE: usize = std::mem::size_of::<PolicyTable>();
}
