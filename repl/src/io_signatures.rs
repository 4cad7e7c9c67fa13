//! The Spool signatures of the command line's I/O operations, on their
//! own so that `build.rs` can read them too: it parses them when the
//! crate is built, and [`crate::engine`] registers the parsed forms
//! instead of parsing the text on every start.

/// The Spool signatures of the operations [`crate::cli_io::handle`]
/// answers. The structs they use (`Output`, `Request`, `Response`) are
/// declared by the standard library.
pub const SIGNATURES: &[&str] = &[
    "fn read_file(path: str) -> str",
    "fn write_file(path: str, data: str)",
    "fn list_dir(path: str) -> [str]",
    "fn exec(cmd: str, args: [str]) -> Output",
    "fn http(req: Request) -> Response",
    "fn http_get(url: str) -> Response",
    "fn sleep(ms: int)",
    "fn now() -> int",
    "fn env(name: str) -> str?",
    "fn input(prompt: str) -> str",
];
