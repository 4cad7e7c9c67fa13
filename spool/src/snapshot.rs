//! Saving a run to bytes and loading it back (LANGUAGE.md §7): the format
//! lives in the VM ([`spool_vm::snapshot`], re-exported here); this module
//! adds restoring with the standard library's natives bound and with a
//! compiled [`crate::Program`].

pub use spool_vm::snapshot::{
    fingerprint, open, seal, sign, snapshot, snapshot_without_program, verify, Header,
    RestoreError, FORMAT_VERSION, HEADER_LEN, MAGIC, SIGNED_MAGIC, TAG_LEN,
};
use spool_vm::Run;

/// A run from bytes made by [`snapshot_without_program`] (or by
/// [`snapshot`]), continuing on `program`, which must be the program it was
/// saved with.
pub fn restore_with_program(bytes: &[u8], program: &crate::Program) -> Result<Run, RestoreError> {
    spool_vm::snapshot::restore_with_program(
        bytes,
        std::sync::Arc::clone(program.bytecode()),
        &program.natives,
    )
}

/// A run from bytes made by [`snapshot`], with the standard library's
/// natives bound again, checked to be safe to execute.
pub fn restore(bytes: &[u8]) -> Result<Run, RestoreError> {
    static NATIVES: std::sync::OnceLock<spool_vm::NativeSet> = std::sync::OnceLock::new();
    spool_vm::snapshot::restore(bytes, NATIVES.get_or_init(spool_stdlib::native_set))
}
