//! The cutover-testapp binary.
use clap::Parser as _;

fn main() -> std::process::ExitCode {
    match cutover_testapp::run(cutover_testapp::Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // A binary may talk to the terminal; the library never does.
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: {e}");
            }
            std::process::ExitCode::from(2)
        }
    }
}
