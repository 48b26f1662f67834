//! The `gridstore` command: a thin layer over the library. `main` only turns the result of
//! [`cli::run`] into an exit code and prints errors with their causes on one line.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use gridstore::text::printable;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    gridstore::store::lock::set_wait_notice(|message| {
        eprintln!("gridstore: {}", printable(message))
    });
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            // Messages may quote a store's text (or a file name in it): escaped.
            eprintln!("gridstore: {}", printable(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}
