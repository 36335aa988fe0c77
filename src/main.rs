use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
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
