//! A v1 plugin whose table claims to be one entry short of v1's.

use yoi_policy::abi::{ABI_VERSION, PolicyTable};
use yoi_policy_test_plugins::MISFIT;

#[unsafe(no_mangle)]
pub extern "C" fn yoi_policy_abi_version() -> u32 {
    ABI_VERSION
}

static TABLE: PolicyTable = PolicyTable {
    size: PolicyTable::SIZE - size_of::<usize>(),
    ..MISFIT
};

#[unsafe(no_mangle)]
pub extern "C" fn yoi_policy_table() -> *const PolicyTable {
    &TABLE
}
