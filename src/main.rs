use std::process::ExitCode;

use clap::{CommandFactory, Parser};

fn main() -> ExitCode {
    // Answers a shell's completion request (COMPLETE=SHELL) and exits.
    clap_complete::CompleteEnv::with_factory(fpctl::cli::Cli::command)
        .var(fpctl::commands::COMPLETE_VAR)
        .complete();
    let cli = fpctl::cli::Cli::try_parse().unwrap_or_else(|mut e| {
        fpctl::commands::add_habit_tip(&mut e);
        e.exit()
    });
    match fpctl::run(cli) {
        Ok(fpctl::Outcome::Success) => ExitCode::SUCCESS,
        Ok(fpctl::Outcome::NotOnline) => ExitCode::from(1),
        Ok(fpctl::Outcome::Interrupted { signal }) => {
            ExitCode::from(u8::try_from(128 + signal).unwrap_or(130))
        }
        Err(e) => {
            fpctl::output::print_error(&e);
            ExitCode::from(e.exit_code())
        }
    }
}
