//! fpctl's own stdout and stderr: `print!`, `println!`, `eprint!` and
//! `eprintln!` of the crate go through [`write_out`] and [`write_err`] (see
//! the macros in `lib.rs`), so that a reader that went away (`fpctl stop |
//! head -1`) ends the output quietly instead of panicking, and the
//! command's work and exit code stay its own.

static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static STDERR_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether a write to stdout failed (its reader went away, as after
/// `| head`): what follows output, like `events -f`, can end.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Note that stdout is gone (a writer of its own found it closed).
pub fn mark_stdout_closed() {
    STDOUT_CLOSED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// What `print!` and `println!` do in this crate: write to stdout, and
/// once that fails, write nothing more, quietly (never a panic).
pub fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    if stdout_closed() {
        return;
    }
    let mut out = std::io::stdout().lock();
    if out.write_fmt(args).is_err() {
        mark_stdout_closed();
    }
}

/// [`write_out`] for stderr (`eprint!`, `eprintln!`).
pub fn write_err(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    use std::sync::atomic::Ordering;
    if STDERR_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    if std::io::stderr().lock().write_fmt(args).is_err() {
        STDERR_CLOSED.store(true, Ordering::Relaxed);
    }
}
