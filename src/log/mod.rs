//! Gunicorn-compatible logging: the error log (`[time] [pid] [LEVEL] message`) and the access log
//! (Gunicorn's `%(h)s`-style atoms, [`access`]). One process-wide logger, set up by the master
//! before it forks (workers inherit it) and reopened in place on SIGUSR1.
//!
//! Lines are formatted on the thread that logs and written by a writer thread of the process
//! ([`writer`]): logging never waits for the destination; a destination that does not keep up
//! loses lines, counted in `heavy_api_log_lines_dropped_total` and reported by a WARNING.
//! Every line is [`escape`]d here, so no value that enters a message (an ECS metadata document,
//! a host name, a request header) can start a line of its own.

mod access;
mod writer;

pub use access::{AccessEntry, AccessFormat};
pub use writer::{count_drops_in, fork_guard, ForkGuard};

use std::borrow::Cow;
use std::fs::OpenOptions;
use std::io;
use std::sync::{Arc, Once, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use writer::{Channel, Target};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

impl std::str::FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "debug" => Level::Debug,
            "info" => Level::Info,
            "warning" | "warn" => Level::Warning,
            "error" => Level::Error,
            "critical" | "fatal" => Level::Critical,
            _ => return Err(format!("invalid log level {s:?}")),
        })
    }
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
            Level::Critical => "CRITICAL",
        }
    }
}

fn open(spec: &str, dash: Target) -> io::Result<Arc<Target>> {
    if spec == "-" {
        return Ok(Arc::new(dash));
    }
    let file = OpenOptions::new().create(true).append(true).open(spec)?;
    Ok(Arc::new(Target::File {
        path: spec.to_string(),
        file,
    }))
}

/// The same destination opened afresh (a file), for log rotation; lines queued before go to
/// the old file.
fn reopen_target(target: &Arc<Target>) -> io::Result<Arc<Target>> {
    match &**target {
        Target::File { path, .. } => open(path, Target::Stderr),
        _ => Ok(target.clone()),
    }
}

struct Logger {
    level: Level,
    error: Arc<Target>,
    access: Option<(Arc<Target>, AccessFormat)>,
}

static LOGGER: RwLock<Option<Logger>> = RwLock::new(None);

/// Sets up (or replaces, on reload) the process's logs.
pub fn init(
    level: Level,
    error_log: &str,
    access_log: Option<&str>,
    access_format: &str,
) -> io::Result<()> {
    let access = match access_log {
        Some(spec) => {
            let format = AccessFormat::parse(access_format).map_err(io::Error::other)?;
            Some((open(spec, Target::Stdout)?, format))
        }
        None => None,
    };
    // `%(t)s` and the error log's time are the server's local time, as Gunicorn's; read TZ now.
    // SAFETY: tzset only (re)reads the time zone settings.
    unsafe { tzset() };
    let logger = Logger {
        level,
        error: open(error_log, Target::Stderr)?,
        access,
    };
    *LOGGER.write().unwrap_or_else(|e| e.into_inner()) = Some(logger);
    // `std::process::exit` (libc's `exit`) runs this: what is queued is written first.
    static AT_EXIT: Once = Once::new();
    AT_EXIT.call_once(|| {
        // SAFETY: registers a plain function; it only waits for this process's writer threads.
        unsafe { libc::atexit(flush_at_exit) };
    });
    Ok(())
}

extern "C" fn flush_at_exit() {
    flush();
}

/// Reopens log files (SIGUSR1), so that log rotation can move the old ones away.
pub fn reopen() -> io::Result<()> {
    let mut guard = LOGGER.write().unwrap_or_else(|e| e.into_inner());
    if let Some(logger) = guard.as_mut() {
        logger.error = reopen_target(&logger.error)?;
        if let Some((target, _)) = logger.access.as_mut() {
            *target = reopen_target(target)?;
        }
    }
    Ok(())
}

/// How long an exit waits for a log's writer that makes no progress (a pipe nobody reads):
/// a healthy destination is flushed completely however long that takes.
const FLUSH_STALL: Duration = Duration::from_secs(5);

/// Writes what this process has queued (reporting drops not yet reported first). Called before
/// a process exits; bounded by [`FLUSH_STALL`] without progress.
pub fn flush() {
    tick_with(true);
    for channel in [&writer::ERROR, &writer::ACCESS] {
        channel.flush(FLUSH_STALL);
    }
}

/// Reports lines dropped since the last report, if one is due (at most every 10 s). Called
/// about once a second by each process's loop, so the last drops of a burst are reported even
/// when nothing else is logged.
pub fn tick() {
    tick_with(false)
}

fn tick_with(now: bool) {
    for channel in [&writer::ERROR, &writer::ACCESS] {
        if let Some(n) = channel.due_report(now) {
            report_drops(channel, n);
        }
    }
}

fn report_drops(channel: &Channel, dropped: u64) {
    let kind = channel.kind().label();
    log(
        Level::Warning,
        &format!(
            "{dropped} {kind} log line(s) dropped: the {kind} log's destination does not keep \
             up (a full pipe or a slow disk); heavy_api_log_lines_dropped_total counts them"
        ),
    );
}

/// Hands a formatted line to its log's writer thread; never waits for the destination.
fn send(channel: &'static Channel, target: Arc<Target>, line: String) {
    if let Some(n) = channel.push(target, line.into_bytes()) {
        report_drops(channel, n);
    }
}

pub fn enabled(level: Level) -> bool {
    let guard = LOGGER.read().unwrap_or_else(|e| e.into_inner());
    guard
        .as_ref()
        .map_or(level >= Level::Info, |l| level >= l.level)
}

extern "C" {
    fn tzset();
}

/// `text` as it may enter a log line: control characters (line breaks above all) and Unicode's
/// line and paragraph separators written as escapes (`\n`, `\r`, `\t`, `\x1b`, `\u{2028}`), so
/// a value from outside (a metadata document, a header, a host name) cannot forge a line or
/// rewrite a terminal. The one place that decides it: every error-log line and access-log atom
/// goes through it.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    escape_into(text, &mut out);
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// [`escape`], appending to `out`.
pub(crate) fn escape_into(text: &str, out: &mut String) {
    use std::fmt::Write as _;
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) && (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// Writes one error-log line, its message [`escape`]d. Before `init`, lines go to stderr at
/// INFO and above, written at once.
pub fn log(level: Level, message: &str) {
    emit(level, &escape(message))
}

/// One error-log record of several lines (Gunicorn's `Current configuration:` block): `title`,
/// then each line of `body` escaped on its own line.
pub fn block(level: Level, title: &str, body: &str) {
    let mut message = escape(title).into_owned();
    for line in body.lines() {
        message.push('\n');
        escape_into(line, &mut message);
    }
    emit(level, &message)
}

fn emit(level: Level, message: &str) {
    // Gunicorn's statsd logger counts these whatever the level lets through.
    match level {
        Level::Warning => crate::statsd::increment("gunicorn.log.warning", 1),
        Level::Error => crate::statsd::increment("gunicorn.log.error", 1),
        Level::Critical => crate::statsd::increment("gunicorn.log.critical", 1),
        _ => {}
    }
    let guard = LOGGER.read().unwrap_or_else(|e| e.into_inner());
    let threshold = guard.as_ref().map_or(Level::Info, |l| l.level);
    if level < threshold {
        return;
    }
    let line = format!(
        "[{}] [{}] [{}] {}\n",
        local_time("%Y-%m-%d %H:%M:%S %z", SystemTime::now()),
        std::process::id(),
        level.label(),
        message
    );
    match guard.as_ref().map(|l| l.error.clone()) {
        Some(target) => {
            drop(guard);
            send(&writer::ERROR, target, line)
        }
        None => Target::Stderr.write_all(line.as_bytes()),
    }
}

pub fn debug(message: &str) {
    log(Level::Debug, message)
}
pub fn info(message: &str) {
    log(Level::Info, message)
}
pub fn warning(message: &str) {
    log(Level::Warning, message)
}
pub fn error(message: &str) {
    log(Level::Error, message)
}
pub fn critical(message: &str) {
    log(Level::Critical, message)
}

/// `time` in UTC as RFC 3339 with milliseconds (2026-12-05T10:00:11.250Z), for JSON.
pub fn utc_rfc3339(time: SystemTime) -> String {
    let since = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs() as libc::time_t;
    // SAFETY: `tm` is fully written by gmtime_r before use.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::gmtime_r(&secs, &mut tm).is_null() {
            return String::new();
        }
        tm
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        since.subsec_millis()
    )
}

/// Formats `time` in local time with `strftime`.
pub fn local_time(format: &str, time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as libc::time_t;
    let fmt = std::ffi::CString::new(format).unwrap_or_default();
    let mut buf = [0u8; 128];
    // SAFETY: `tm` is fully written by localtime_r before use; strftime writes at most
    // `buf.len()` bytes and returns how many.
    let written = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            return String::new();
        }
        libc::strftime(buf.as_mut_ptr().cast(), buf.len(), fmt.as_ptr(), &tm)
    };
    String::from_utf8_lossy(&buf[..written]).into_owned()
}

/// Writes an access-log line, if an access log is configured. Called after the response is sent.
pub fn access(entry: &AccessEntry<'_>) {
    let guard = LOGGER.read().unwrap_or_else(|e| e.into_inner());
    if let Some((target, format)) = guard.as_ref().and_then(|l| l.access.as_ref()) {
        let mut line = format.render(entry);
        line.push('\n');
        let target = target.clone();
        drop(guard);
        send(&writer::ACCESS, target, line);
    }
}

pub fn access_enabled() -> bool {
    let guard = LOGGER.read().unwrap_or_else(|e| e.into_inner());
    guard.as_ref().is_some_and(|l| l.access.is_some())
}

/// Whether the access-log format reads request header `name` (lower case).
pub fn access_reads_header(name: &str) -> bool {
    let guard = LOGGER.read().unwrap_or_else(|e| e.into_inner());
    guard
        .as_ref()
        .and_then(|l| l.access.as_ref())
        .is_some_and(|(_, format)| format.reads_header(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_so_no_value_starts_a_line() {
        assert!(matches!(escape("plain: été"), Cow::Borrowed("plain: été")));
        assert_eq!(
            escape("a\nb\rc\td\x1b[2Je\u{7f}\u{85}\u{2028}"),
            r"a\nb\rc\td\x1b[2Je\x7f\x85\u{2028}"
        );
        let headers = vec![("X-Req".to_string(), "q\"\u{85}x".to_string())];
        let format = AccessFormat::parse("%({x-req}i)s").unwrap();
        let entry = access::tests_entry(&headers);
        assert_eq!(format.render(&entry), r#"q\"\x85x"#);
    }

    #[test]
    fn utc_rfc3339_is_utc_with_milliseconds() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_796_378_411_250);
        assert_eq!(utc_rfc3339(t), "2026-12-04T10:00:11.250Z");
    }

    #[test]
    fn local_time_has_gunicorns_shape() {
        let t = local_time("%Y-%m-%d %H:%M:%S %z", SystemTime::now());
        assert_eq!(t.len(), 25, "{t}");
        assert!(t.as_bytes()[20] == b'+' || t.as_bytes()[20] == b'-', "{t}");
    }
}
