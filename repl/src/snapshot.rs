//! Saving a run to bytes and loading it back.
//!
//! The bytes are the run's plain data in postcard, behind a magic number
//! and a format version; the program travels inside the run.

use spool_vm::Run;

/// The first bytes of every saved run.
const MAGIC: &[u8; 8] = b"SPOOLRUN";
/// Bumped whenever the layout of a saved run changes.
const FORMAT_VERSION: u32 = 3;

/// Why saved bytes could not be turned back into a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreError {
    /// What is wrong with the bytes.
    pub message: String,
}

impl std::fmt::Display for RestoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot restore the run: {}", self.message)
    }
}

impl std::error::Error for RestoreError {}

/// The whole run as bytes.
pub fn snapshot(run: &Run) -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    postcard::to_extend(run, bytes).expect("a run always serializes")
}

/// A run from bytes made by [`snapshot`], with the standard library's
/// natives bound again.
pub fn restore(bytes: &[u8]) -> Result<Run, RestoreError> {
    let fail = |message: String| RestoreError { message };
    let body = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| fail("not a saved Spool run".into()))?;
    let (version, body) = body
        .split_at_checked(4)
        .ok_or_else(|| fail("truncated header".into()))?;
    let version = u32::from_le_bytes(version.try_into().expect("four bytes"));
    if version != FORMAT_VERSION {
        return Err(fail(format!(
            "format version {version}, this Spool reads {FORMAT_VERSION}"
        )));
    }
    let mut run: Run = postcard::from_bytes(body).map_err(|e| fail(e.to_string()))?;
    run.bind_natives(&spool_stdlib::native_set())
        .map_err(fail)?;
    spool_vm::validate(&run).map_err(fail)?;
    Ok(run)
}
