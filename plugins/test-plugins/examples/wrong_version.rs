//! Speaks ABI version 2. Its table is null: a host that read it before checking the
//! version would report a null table instead of the version.

use yoi_policy::abi::PolicyTable;

#[unsafe(no_mangle)]
pub extern "C" fn yoi_policy_abi_version() -> u32 {
    2
}

#[unsafe(no_mangle)]
pub extern "C" fn yoi_policy_table() -> *const PolicyTable {
    std::ptr::null()
}
