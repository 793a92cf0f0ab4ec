//! Exports the version symbol and nothing else.

#[unsafe(no_mangle)]
pub extern "C" fn yoi_policy_abi_version() -> u32 {
    yoi_policy::abi::ABI_VERSION
}
