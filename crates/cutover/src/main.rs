//! The `cutover` executable: everything lives in the library so that xtask can reach the CLI model.

fn main() -> std::process::ExitCode {
    cutover::main()
}
