//! Saving a run to bytes and loading it back (LANGUAGE.md §7).
//!
//! The layout, all integers little-endian:
//!
//! | bytes | what |
//! |---|---|
//! | 8 | magic `SPOOLRUN` |
//! | 4 | format version (bumped whenever the run's layout changes) |
//! | 8 | the program's fingerprint ([`fingerprint`]), so a store can tell which program a run belongs to without decoding it |
//! | 4 | CRC-32 of everything after the header |
//! | … | the run in postcard, the program's bytecode inside it |
//!
//! [`restore`] treats the bytes as untrusted: a wrong magic, version or
//! checksum is refused with a message, postcard decoding never panics and
//! allocates at most in proportion to the input, and the decoded run is
//! checked by [`crate::saved::validate`] before it can execute.
//!
//! This is all a host that only resumes saved runs needs: the VM alone
//! restores and runs them, given the native functions their programs call.

use std::sync::Arc;

use crate::exec::native::NativeSet;
use crate::program::Program;
use crate::run::Run;

/// The first bytes of every saved run.
pub const MAGIC: &[u8; 8] = b"SPOOLRUN";
/// Bumped whenever the layout of a saved run, or what a valid one may
/// hold, changes (14: a list of bools stored a byte an element, and the
/// instruction that makes one).
pub const FORMAT_VERSION: u32 = 14;
/// Bytes before the postcard body.
pub const HEADER_LEN: usize = 8 + 4 + 8 + 4;

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

/// A program's fingerprint: a hash of its whole bytecode, layouts and
/// names (its own `fingerprint` field aside), the same in every process
/// and on every machine.
pub fn fingerprint(program: &Program) -> u64 {
    let mut bytes = postcard::to_allocvec(program).unwrap_or_default();
    // The field is last in the encoding: hash without it.
    let own = postcard::to_allocvec(&program.fingerprint).unwrap_or_default();
    bytes.truncate(bytes.len().saturating_sub(own.len()));
    fnv1a(&bytes)
}

/// FNV-1a, 64 bits: a fixed, documented hash.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The whole run as bytes.
pub fn snapshot(run: &Run) -> Vec<u8> {
    let mut bytes = vec![0; HEADER_LEN];
    let mut bytes =
        postcard::to_extend(run, std::mem::take(&mut bytes)).expect("a run always serializes");
    seal(&mut bytes, run.program().fingerprint);
    bytes
}

/// Writes the header of `bytes` (whose first [`HEADER_LEN`] bytes are
/// reserved for it) for a body belonging to a program with `fingerprint`.
pub fn seal(bytes: &mut [u8], fingerprint: u64) {
    let checksum = crc32fast::hash(&bytes[HEADER_LEN..]);
    bytes[..8].copy_from_slice(MAGIC);
    bytes[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes[12..20].copy_from_slice(&fingerprint.to_le_bytes());
    bytes[20..24].copy_from_slice(&checksum.to_le_bytes());
}

/// The header of saved bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The format version.
    pub version: u32,
    /// The fingerprint of the program the run belongs to.
    pub fingerprint: u64,
}

/// Reads and checks the header and the checksum; gives the header and the
/// body.
pub fn open(bytes: &[u8]) -> Result<(Header, &[u8]), RestoreError> {
    let fail = |message: &str| RestoreError {
        message: message.to_string(),
    };
    if bytes.starts_with(SIGNED_MAGIC) {
        return Err(fail(
            "the saved run is signed with a host key: restore it with the key",
        ));
    }
    if !bytes.starts_with(MAGIC) {
        return Err(fail("not a saved Spool run"));
    }
    if bytes.len() < HEADER_LEN {
        return Err(fail("the file is truncated (incomplete header)"));
    }
    let word =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let version = word(8);
    if version != FORMAT_VERSION {
        return Err(RestoreError {
            message: format!(
                "saved in format version {version}; this Spool reads version {FORMAT_VERSION}"
            ),
        });
    }
    let fingerprint = u64::from(word(12)) | (u64::from(word(16)) << 32);
    let body = &bytes[HEADER_LEN..];
    if crc32fast::hash(body) != word(20) {
        return Err(fail(
            "the checksum does not match: the file is damaged or truncated",
        ));
    }
    Ok((
        Header {
            version,
            fingerprint,
        },
        body,
    ))
}

/// The run as bytes without its program, for a store that keeps many runs
/// of one program and the program once: [`restore_with_program`] takes the
/// program back. The header still records the program's fingerprint.
pub fn snapshot_without_program(run: &mut Run) -> Vec<u8> {
    let program = run.detach_program();
    let fingerprint = program.fingerprint;
    let mut bytes =
        postcard::to_extend(&*run, vec![0; HEADER_LEN]).expect("a run always serializes");
    run.attach_program(program);
    seal(&mut bytes, fingerprint);
    bytes
}

/// A run from bytes made by [`snapshot_without_program`] (or by
/// [`snapshot`]), continuing on `program`, which must be the program it was
/// saved with (checked by fingerprint), with `natives` bound and checked to
/// be safe to execute.
pub fn restore_with_program(
    bytes: &[u8],
    program: Arc<Program>,
    natives: &NativeSet,
) -> Result<Run, RestoreError> {
    let fail = |message: String| RestoreError { message };
    let (header, body) = open(bytes)?;
    let expected = program.fingerprint;
    if header.fingerprint != expected {
        return Err(fail(format!(
            "the run belongs to program {:016x}, not to this one ({expected:016x})",
            header.fingerprint
        )));
    }
    let mut run = decode(body)?;
    run.attach_program(program);
    finish(run, natives)
}

/// A run from bytes made by [`snapshot`], with `natives` bound (the native
/// functions and I/O operations its program calls, by key), checked to be
/// safe to execute.
pub fn restore(bytes: &[u8], natives: &NativeSet) -> Result<Run, RestoreError> {
    let (header, body) = open(bytes)?;
    let run = decode(body)?;
    if run.program().functions.is_empty() {
        return Err(RestoreError {
            message:
                "the run was saved without its program; restore it with `restore_with_program`"
                    .into(),
        });
    }
    check_fingerprint(&header, run.program())?;
    finish(run, natives)
}

/// The header's fingerprint is the program's, and the program is the one
/// its fingerprint names (neither was edited on its own; a program of an
/// interactive session, fingerprint 0, is not checked).
fn check_fingerprint(header: &Header, program: &Program) -> Result<(), RestoreError> {
    let fail = |message: &str| {
        Err(RestoreError {
            message: message.to_string(),
        })
    };
    if header.fingerprint != program.fingerprint {
        return fail("the header's fingerprint is not the program's");
    }
    if program.fingerprint != 0 && fingerprint(program) != program.fingerprint {
        return fail("the program does not match its fingerprint");
    }
    Ok(())
}

fn decode(body: &[u8]) -> Result<Run, RestoreError> {
    postcard::from_bytes(body).map_err(|e| RestoreError {
        message: match e {
            // postcard keeps no text for the errors of Spool's own decoders.
            postcard::Error::SerdeDeCustom => "the run does not decode: malformed contents \
                (a register file or list that is not a valid encoding, or I/O data \
                nested too deeply)"
                .to_string(),
            e => format!("the run does not decode: {e}"),
        },
    })
}

/// Binds the natives and validates the run.
fn finish(mut run: Run, natives: &NativeSet) -> Result<Run, RestoreError> {
    let fail = |message: String| RestoreError { message };
    run.bind_natives(natives).map_err(fail)?;
    crate::saved::validate::validate(&run)
        .map_err(|e| fail(format!("the run is inconsistent: {e}")))?;
    Ok(run)
}

/// The first bytes of a saved run signed with a host key ([`sign`]).
pub const SIGNED_MAGIC: &[u8; 8] = b"SPOOLSIG";

/// The length of a signature: an HMAC-SHA256 tag.
pub const TAG_LEN: usize = 32;

/// `bytes` (a saved run, header and body) signed with `key`: the signed
/// magic, an HMAC-SHA256 tag over `bytes`, then `bytes`. A host that keeps
/// saved runs where others could change them signs them, and restores
/// only what [`verify`] accepts: a saved run is code, like a script.
pub fn sign(bytes: &[u8], key: &[u8]) -> Vec<u8> {
    use hmac::Mac;
    let mut signed = Vec::with_capacity(SIGNED_MAGIC.len() + TAG_LEN + bytes.len());
    signed.extend_from_slice(SIGNED_MAGIC);
    signed.extend_from_slice(&mac(key, bytes).finalize().into_bytes());
    signed.extend_from_slice(bytes);
    signed
}

/// The saved run inside `signed`, if it was signed with `key` and not
/// changed since; checked before any of it is decoded.
pub fn verify<'a>(signed: &'a [u8], key: &[u8]) -> Result<&'a [u8], RestoreError> {
    use hmac::Mac;
    let fail = |message: &str| RestoreError {
        message: message.to_string(),
    };
    if !signed.starts_with(SIGNED_MAGIC) {
        return Err(fail(if signed.starts_with(MAGIC) {
            "the saved run is not signed, and a host key is required"
        } else {
            "not a saved Spool run"
        }));
    }
    let rest = &signed[SIGNED_MAGIC.len()..];
    if rest.len() < TAG_LEN {
        return Err(fail("the signature is truncated"));
    }
    let (tag, bytes) = rest.split_at(TAG_LEN);
    mac(key, bytes).verify_slice(tag).map_err(|_| {
        fail("the signature does not match: the file was changed or signed with another key")
    })?;
    Ok(bytes)
}

/// HMAC-SHA256 of `bytes` under `key`.
fn mac(key: &[u8], bytes: &[u8]) -> hmac::Hmac<sha2::Sha256> {
    use hmac::Mac;
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(key)
        .expect("HMAC takes keys of any length");
    mac.update(bytes);
    mac
}
