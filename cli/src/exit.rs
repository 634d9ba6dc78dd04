//! Exit codes, one meaning each in every command (the table is in
//! cli/README.md), and how a failure maps to one.

use std::process::ExitCode;

use tidemark::Error;

/// Success; for `put`/`delete`, the write is acknowledged durable.
pub const OK: u8 = 0;
/// The command could not do its job (the store, the database or the data
/// failed it); for `put`/`delete`, the write was not written.
pub const ERROR: u8 = 1;
/// Bad command line (clap, or an argument that does not decode): nothing was done.
pub const USAGE: u8 = 2;
/// A write was sent but its outcome cannot be known: it may or may not be durable.
pub const OUTCOME_UNKNOWN: u8 = 3;
/// `get`: the key has no value. An answer, not an error.
pub const NOT_FOUND: u8 = 4;
/// `fsck`: the check ran and found a problem.
pub const PROBLEMS: u8 = 5;

/// What a command that ran to its end answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    NotFound,
    Problems,
}

/// Why a command failed.
#[derive(Debug)]
pub enum Failure {
    Usage(String),
    Db(Error),
    Io(std::io::Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Db(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Io(e)
    }
}

/// The exit code for a command's result, after printing its one line to
/// stderr. `writes`: the command was `put` or `delete`, whose failures say
/// whether the write was written.
pub fn report(result: Result<Outcome, Failure>, writes: bool) -> ExitCode {
    let code = match result {
        Ok(Outcome::Done) => OK,
        Ok(Outcome::NotFound) => {
            eprintln!("not found");
            NOT_FOUND
        }
        Ok(Outcome::Problems) => PROBLEMS,
        Err(Failure::Usage(m)) => {
            eprintln!("tidemark: {m}");
            USAGE
        }
        // A reader that stopped reading (`| head`) is not a failure.
        Err(Failure::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => OK,
        Err(Failure::Io(e)) => {
            eprintln!("tidemark: {e}");
            ERROR
        }
        Err(Failure::Db(e @ Error::OutcomeUnknown { .. })) => {
            eprintln!("tidemark: {e}");
            OUTCOME_UNKNOWN
        }
        Err(Failure::Db(e)) if writes => {
            eprintln!("tidemark: not written: {e}");
            ERROR
        }
        Err(Failure::Db(e)) => {
            eprintln!("tidemark: {e}");
            ERROR
        }
    };
    ExitCode::from(code)
}
