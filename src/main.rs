//! The `gridstore` command: a thin layer over the library. `main` only turns the result of
//! [`cli::run`] into an exit code and prints errors with their causes on one line.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use gridstore::text::printable;

fn main() -> ExitCode {
    // A reader that stops early (`gridstore log | head`) ends this process quietly, as it
    // ends any command-line tool, rather than making printing fail. Rust sets SIGPIPE to
    // be ignored before `main`; restore the default.
    // SAFETY: called first, before any other thread exists; SIG_DFL is a valid handler.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
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
