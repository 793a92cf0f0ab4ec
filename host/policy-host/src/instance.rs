//! A policy instance: a plugin initialised with one configured entry's settings, and
//! the calls into it.

use std::ffi::c_void;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use yoi_policy::abi::{InBytes, ObserveFn, Status};
use yoi_policy::{CommandVerdict, Interest};

use crate::call::{self, CallError};
use crate::library::Plugin;

/// One configured use of a plugin. Released (the plugin drops its value) when the chain
/// holding it is dropped; the library itself stays loaded.
#[derive(Debug)]
pub(crate) struct Instance {
    plugin: Arc<Plugin>,
    ptr: *mut c_void,
    interest: Interest,
}

// SAFETY: the ABI requires instances to be usable from any thread, concurrently (the SDK
// enforces it: a `Policy` is `Send + Sync`).
unsafe impl Send for Instance {}
// SAFETY: as above.
unsafe impl Sync for Instance {}

impl Instance {
    /// Initialises `plugin` with `settings` (its one `init` call for this entry).
    pub(crate) fn new(
        plugin: &Arc<Plugin>,
        settings: &serde_json::Value,
    ) -> Result<Self, CallError> {
        let settings = serde_json::to_vec(settings).map_err(|e| {
            CallError::RejectedInput(format!("the settings cannot be encoded: {e}"))
        })?;
        let entries = plugin.entries;
        let mut ptr: *mut c_void = std::ptr::null_mut();
        let mut status = Status::PLUGIN_ERROR;
        // SAFETY: the plugin's `init` and `free`, called per the ABI; `settings`, `ptr`
        // and `status` outlive the call.
        let interest = unsafe {
            call::call(
                entries.free,
                |out| {
                    status = (entries.init)(InBytes::new(&settings), &mut ptr, out);
                    status
                },
                call::json::<Interest>,
            )
        };
        // Only an `OK` init made an instance. One made alongside an unusable answer is
        // released, not leaked; a pointer written by a failed init is not trusted.
        let instance = (status == Status::OK && !ptr.is_null()).then(|| Instance {
            plugin: plugin.clone(),
            ptr,
            interest: Interest::nothing(),
        });
        match (interest, instance) {
            (Ok(interest), Some(mut instance)) => {
                instance.interest = interest;
                Ok(instance)
            }
            (Ok(_), None) => Err(CallError::BadAnswer(
                "init answered OK without an instance".into(),
            )),
            (Err(e), _) => Err(e),
        }
    }

    pub(crate) fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    pub(crate) fn interest(&self) -> &Interest {
        &self.interest
    }

    /// Asks the plugin about an observed item; `request` is an `ObserveRequest`.
    pub(crate) fn observe<T: DeserializeOwned>(&self, request: &[u8]) -> Result<T, CallError> {
        self.ask(self.plugin.entries.observe, request)
    }

    /// Asks the plugin about a command; `request` is a `CommandRequest`.
    pub(crate) fn command(&self, request: &[u8]) -> Result<CommandVerdict, CallError> {
        self.ask(self.plugin.entries.command, request)
    }

    /// Calls `entry` (this plugin's `observe` or `command`) on this instance.
    fn ask<T: DeserializeOwned>(&self, entry: ObserveFn, request: &[u8]) -> Result<T, CallError> {
        // SAFETY: one of the plugin's decision entries and its `free`, on its own live
        // instance, per the ABI.
        unsafe {
            call::call(
                self.plugin.entries.free,
                |out| entry(self.ptr, InBytes::new(request), out),
                call::json,
            )
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // SAFETY: made by this plugin's `init`, released once, with no call in flight
        // (calls borrow the instance).
        unsafe { (self.plugin.entries.release)(self.ptr) };
    }
}
