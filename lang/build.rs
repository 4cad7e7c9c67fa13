//! Build script: turns `src/grammar.lalrpop` into the LR parser tables the
//! [`parser`](../src/parser.rs) module includes. The output goes to `OUT_DIR`,
//! so the generated code is never checked in.

fn main() {
    lalrpop::Configuration::new()
        .use_cargo_dir_conventions()
        .emit_rerun_directives(true)
        .process_file("src/grammar.lalrpop")
        .expect("the Spool grammar must be LR(1); lalrpop reported a conflict or error");
}
