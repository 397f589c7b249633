//! Writing results to standard output.

use super::Failure;
use skill_tuner::exit::ExitClass;

/// `value` as pretty JSON, or as the text `table` makes of it. A value that cannot be
/// rendered is said but does not change the exit status: the command's work is done.
pub fn print<T: serde::Serialize>(value: &T, json: bool, table: impl FnOnce(&T) -> String) {
    if json {
        print_json(value, true);
    } else {
        print!("{}", table(value));
    }
}

/// `value` as one JSON document (pretty) or one JSON line.
pub fn print_json<T: serde::Serialize>(value: &T, pretty: bool) {
    let text = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    match text {
        Ok(text) => println!("{text}"),
        Err(e) => Failure::new(ExitClass::Failed, format!("cannot render as JSON: {e}")).print(),
    }
}

/// Writes generated text to standard output; a reader that went away (`| head`) is no error.
pub fn print_bytes(bytes: &[u8]) -> Result<ExitClass, Failure> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(ExitClass::Ok),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitClass::Ok),
        Err(e) => Err(Failure::new(
            ExitClass::Failed,
            format!("cannot write to standard output: {e}"),
        )),
    }
}
