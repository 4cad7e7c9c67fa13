//! spool-stdlib: the standard library every script sees (LANGUAGE.md §9).
//!
//! Most of it is native Rust functions, one [`NativeDef`] each, grouped by
//! the kind of their first parameter: [`core`] (printing, conversions,
//! `assert`, `random`, `args`), [`strings`], [`lists`], [`maps`], [`math`],
//! [`json`] and [`coro`]. The front end parses every `sig` to type-check calls and
//! binds each call to a `key`; a run binds keys to functions through
//! [`native_set`]. The higher-order functions (`map`, `filter`, `fold`,
//! `sort_by`, ...) and the `Error` and `Json` declarations are written in
//! Spool, in [`PRELUDE`], because natives never call back into script code.

pub mod core;
pub mod coro;
pub mod json;
mod json_parse;
pub mod lists;
pub mod maps;
pub mod math;
mod param;
pub mod pow;
pub mod strings;
pub mod tasks;

use std::sync::OnceLock;

use spool_vm::{NativeFn, NativeSet};

/// The part of the standard library written in Spool: compiled before every
/// script (the `spool` crate does that once, when it is built, and starts
/// each compile from the result).
pub const PRELUDE: &str = include_str!("prelude.spl");

/// One native function of the standard library.
#[derive(Clone, Copy, Debug)]
pub struct NativeDef {
    /// Unique binding key, `"<kind of first parameter>.<name>"`, for example
    /// `"list.len"`; overloads of one name have distinct keys.
    pub key: &'static str,
    /// The Spool signature without a body, exactly as a Spool programmer would
    /// write it, for example `"fn get<K, V>(m: [K: V], key: K) -> V?"`.
    pub sig: &'static str,
    /// The implementation.
    pub func: NativeFn,
}

/// The natives by module, in the order [`natives`] gives them.
const GROUPS: [&[NativeDef]; 8] = [
    core::DEFS,
    strings::DEFS,
    lists::DEFS,
    maps::DEFS,
    math::DEFS,
    json::DEFS,
    coro::DEFS,
    tasks::DEFS,
];

/// Every native function of the standard library, in a fixed order.
pub fn natives() -> &'static [NativeDef] {
    static ALL: OnceLock<Vec<NativeDef>> = OnceLock::new();
    ALL.get_or_init(|| GROUPS.concat())
}

/// Parses JSON `text` into a value of `program`'s `enum Json` in `heap`,
/// as `json_parse` does (hosts use it to turn answers into script values).
pub fn parse_json(
    heap: &mut spool_vm::Heap,
    program: &spool_vm::Program,
    text: &str,
) -> Result<spool_vm::Value, spool_vm::VmError> {
    json_parse::Parser::new(text, heap, program)?.parse()
}

/// The natives as a key-to-function set, for binding a run's program.
pub fn native_set() -> NativeSet {
    // By group: the list [`natives`] concatenates is not needed here.
    let mut set = NativeSet::with_capacity(GROUPS.iter().map(|group| group.len()).sum());
    for def in GROUPS.iter().flat_map(|group| group.iter()) {
        set.insert_static(def.key, def.func);
    }
    set
}
