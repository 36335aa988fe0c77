use std::process::ExitCode;

use clap::{CommandFactory, Parser};

fn main() -> ExitCode {
    // Answers a shell's completion request (COMPLETE=SHELL) and exits.
    clap_complete::CompleteEnv::with_factory(fpctl::cli::Cli::command)
        .var(fpctl::commands::COMPLETE_VAR)
        .complete();
    let cli = fpctl::cli::Cli::parse();
    match fpctl::run(cli) {
        Ok(fpctl::Outcome::Success) => ExitCode::SUCCESS,
        Ok(fpctl::Outcome::NotOnline) => ExitCode::from(1),
        Err(e) => {
            fpctl::output::print_error(&e);
            ExitCode::from(e.exit_code())
        }
    }
}
