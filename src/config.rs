//! The command line and the settings it resolves to.
//!
//! Flag names, meanings and precedence are Gunicorn's: built-in defaults (some read
//! `WEB_CONCURRENCY` and `PORT`) < the config file (`-c FILE`, default `./gunicorn.conf.py`;
//! see [`crate::gunicorn_conf`]) < the extra arguments in `HEAVY_API_CMD_ARGS` (or
//! `GUNICORN_CMD_ARGS`) < the real command line. The defaults differ from Gunicorn's only where
//! the original service's production settings did: 4 workers, 2 threads, a 120 s timeout.
//!
//! Every Gunicorn setting is accepted ([`crate::settings`]): those heavy-api does not implement
//! are taken out of the arguments before they are parsed, each with one WARNING for the boot
//! log, and so is the `APP_MODULE` argument every Gunicorn command line has.

use crate::app::Limits;
use crate::http::{HttpLimits, DEFAULT_HEAD_LIMIT};
use crate::log::Level;
use crate::settings::{self, Takes};
use crate::statsd;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub const EXTRA_ARGS_ENV: &str = "HEAVY_API_CMD_ARGS";
pub const GUNICORN_EXTRA_ARGS_ENV: &str = "GUNICORN_CMD_ARGS";
/// Gunicorn's default config file, read when it exists and no `-c` is given.
pub const DEFAULT_CONFIG_FILE: &str = "./gunicorn.conf.py";
pub const DEFAULT_ACCESS_LOG_FORMAT: &str =
    r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#;

#[derive(Parser, Debug)]
#[command(
    name = "heavy-api",
    version,
    about = "A deliberately CPU- and I/O-heavy HTTP API for load-testing platforms, served by a \
             Gunicorn-style prefork server (a master and N workers with M handler threads each).",
    long_about = None,
    after_help = "Endpoints: GET /heavy/health/ and GET /heavy/cpu-io-no-db/?prime_limit=&hash_rounds=&io_kb=\n\
                  Extra arguments are also read from $HEAVY_API_CMD_ARGS (or $GUNICORN_CMD_ARGS); \
                  the real command line wins.\n\
                  Signals to the master: TERM graceful stop, INT/QUIT quick stop, HUP reload, \
                  TTIN/TTOU one worker more/less, USR1 reopen log files.",
    args_override_self = true,
    allow_negative_numbers = true,
    args_conflicts_with_subcommands = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Probe a running server's /heavy/health/ and exit 0 if it answers 200, else 1 (for
    /// container health checks: the image has no curl).
    Healthcheck {
        /// Server to probe: a base URL, or the full health URL.
        /// [default: http://127.0.0.1:$PORT, else http://127.0.0.1:8000]
        url: Option<String>,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 3.0)]
        timeout: f64,
    },
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Socket to bind: HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N. Repeat for several.
    /// [default: 127.0.0.1:8000, or 0.0.0.0:$PORT when PORT is set]
    #[arg(
        short = 'b',
        long = "bind",
        value_name = "ADDRESS",
        help_heading = "Server socket"
    )]
    pub bind: Vec<String>,

    /// Serve `/metrics` on this address only (HOST:PORT, unix:PATH); the main listeners then
    /// answer `/metrics` with 404, so a load balancer never reaches it.
    #[arg(long, value_name = "ADDRESS", help_heading = "Server socket")]
    pub metrics_bind: Option<String>,

    /// Maximum number of pending connections (listen backlog).
    #[arg(long, default_value_t = 2048, value_name = "INT",
          value_parser = clap::value_parser!(i32).range(1..=65535), help_heading = "Server socket")]
    pub backlog: i32,

    /// Number of worker processes, or `auto`: two per usable CPU (the cgroup CPU quota rounded
    /// up, else the CPU affinity, else the CPU count). [default: $WEB_CONCURRENCY, else 4]
    #[arg(short = 'w', long, value_name = "INT|auto", value_parser = parse_workers,
          help_heading = "Worker processes")]
    pub workers: Option<Workers>,

    /// Handler threads per worker (the heavy requests a worker runs at once).
    #[arg(long, default_value_t = 2, value_name = "INT",
          value_parser = clap::value_parser!(u32).range(1..=1024), help_heading = "Worker processes")]
    pub threads: u32,

    /// Worker class: `gthread`, or `sync` (the same threaded worker; with --threads 1 it
    /// serves one request at a time without keep-alive, as sync does). Others are warned about
    /// and run as gthread.
    #[arg(
        short = 'k',
        long,
        value_name = "STRING",
        default_value = "gthread",
        help_heading = "Worker processes"
    )]
    pub worker_class: String,

    /// Most connections one worker holds open (active and keep-alive). At the limit a worker
    /// closes its least productive connection (silent longest, no complete request) to make
    /// room, or leaves new ones in the listen backlog (with a WARNING) when every one is
    /// working. [default: what the descriptors allow and what keeps all workers' unfinished
    /// heads within 256 MiB, or a quarter of the memory limit]
    #[arg(long, value_name = "INT",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000), help_heading = "Worker processes")]
    pub worker_connections: Option<u32>,

    /// Seconds a heavy request may run before it is answered 503 and stopped; a worker that stops
    /// making progress for this long is killed and replaced. 0 disables both.
    #[arg(short = 't', long, default_value_t = 120, value_name = "INT",
          value_parser = seconds(), help_heading = "Worker processes")]
    pub timeout: u64,

    /// Seconds workers get to finish their requests after a stop or restart signal, before they
    /// are killed.
    #[arg(long, default_value_t = 30, value_name = "INT", value_parser = seconds(),
          help_heading = "Worker processes")]
    pub graceful_timeout: u64,

    /// On TERM, first answer `/heavy/ready/` with 503 and keep serving everything for this many
    /// seconds (so load balancers stop routing here), then stop gracefully.
    #[arg(long, default_value_t = 0, value_name = "INT", value_parser = seconds(),
          help_heading = "Worker processes")]
    pub drain_delay: u64,

    /// Seconds an idle keep-alive connection is kept open. 0 disables keep-alive.
    #[arg(long = "keep-alive", default_value_t = 2, value_name = "INT", value_parser = seconds(),
          help_heading = "Worker processes")]
    pub keep_alive: u64,

    /// Restart a worker after it has handled this many requests (0: never).
    #[arg(long, default_value_t = 0, value_name = "INT", value_parser = count(),
          help_heading = "Worker processes")]
    pub max_requests: u64,

    /// Add a random 0..=N to --max-requests per worker, so workers do not restart together.
    #[arg(long, default_value_t = 0, value_name = "INT", value_parser = count(),
          help_heading = "Worker processes")]
    pub max_requests_jitter: u64,

    /// Longest request line in bytes (0: 8190). Longer lines get 400.
    #[arg(long, default_value_t = 4094, value_name = "INT", value_parser = limit(),
          help_heading = "Request limits")]
    pub limit_request_line: i64,

    /// Most header fields in a request (0: 32768). More get 431.
    #[arg(long, default_value_t = 100, value_name = "INT", value_parser = limit(),
          help_heading = "Request limits")]
    pub limit_request_fields: i64,

    /// Longest header line in bytes, CRLF included as Gunicorn counts it (0: 65536). Longer
    /// ones get 431.
    #[arg(long = "limit-request-field_size", alias = "limit-request-field-size",
          default_value_t = 8190, value_name = "INT", value_parser = limit(),
          help_heading = "Request limits")]
    pub limit_request_field_size: i64,

    /// Largest request head in bytes, request line and header lines together (not a Gunicorn
    /// setting: without it a head could reach fields x field size). Larger ones get 431.
    #[arg(long, default_value_t = DEFAULT_HEAD_LIMIT as u64, value_name = "INT",
          value_parser = clap::value_parser!(u64).range(1024..=16 * 1024 * 1024),
          help_heading = "Request limits")]
    pub limit_request_head: u64,

    /// Largest request body in bytes (bodies are read and discarded). Larger ones get 413.
    #[arg(long, default_value_t = 1024 * 1024, value_name = "INT",
          value_parser = clap::value_parser!(u64).range(0..=1 << 40), help_heading = "Request limits")]
    pub limit_request_body: u64,

    /// Largest prime_limit a request may ask for.
    #[arg(long, default_value_t = Limits::default().max_prime_limit, value_name = "INT",
          value_parser = work(), help_heading = "Heavy endpoint")]
    pub max_prime_limit: i64,

    /// Largest hash_rounds a request may ask for.
    #[arg(long, default_value_t = Limits::default().max_hash_rounds, value_name = "INT",
          value_parser = work(), help_heading = "Heavy endpoint")]
    pub max_hash_rounds: i64,

    /// Largest io_kb a request may ask for.
    #[arg(long, default_value_t = Limits::default().max_io_kb, value_name = "INT",
          value_parser = clap::value_parser!(i64).range(0..=1024 * 1024),
          help_heading = "Heavy endpoint")]
    pub max_io_kb: i64,

    /// The data file every heavy request appends to and reads from.
    /// [default: <system temp dir>/heavy_api_io.bin]
    #[arg(long, value_name = "FILE", help_heading = "Heavy endpoint")]
    pub io_file: Option<PathBuf>,

    /// Access log file; '-' for stdout. [default: no access log]
    #[arg(long, value_name = "FILE", help_heading = "Logging")]
    pub access_logfile: Option<String>,

    /// Access log format, with Gunicorn's atoms (%(h)s, %(r)s, %(s)s, %(D)s, %({header}i)s, ...).
    #[arg(long, default_value = DEFAULT_ACCESS_LOG_FORMAT, value_name = "STRING",
          help_heading = "Logging")]
    pub access_logformat: String,

    /// Error log file; '-' for stderr.
    #[arg(
        long,
        alias = "log-file",
        default_value = "-",
        value_name = "FILE",
        help_heading = "Logging"
    )]
    pub error_logfile: String,

    /// Error log level: debug, info, warning, error or critical, in any case (anything else is
    /// info, as in Gunicorn).
    #[arg(
        long,
        default_value = "info",
        value_name = "LEVEL",
        help_heading = "Logging"
    )]
    pub log_level: String,

    /// Send Gunicorn's statsd metrics to HOST:PORT (UDP; port 8125 if omitted) or unix:PATH.
    #[arg(long, value_name = "STATSD_ADDR", help_heading = "Logging")]
    pub statsd_host: Option<String>,

    /// Prefix for the statsd metric names (a trailing '.' is added).
    #[arg(
        long,
        default_value = "",
        value_name = "STATSD_PREFIX",
        help_heading = "Logging"
    )]
    pub statsd_prefix: String,

    /// Comma-separated dogstatsd tags appended to every statsd metric.
    #[arg(
        long,
        default_value = "",
        value_name = "DOGSTATSD_TAGS",
        help_heading = "Logging"
    )]
    pub dogstatsd_tags: String,

    /// Write the master's pid to this file (refused if it names a live process).
    #[arg(
        short = 'p',
        long = "pid",
        value_name = "FILE",
        help_heading = "Process"
    )]
    pub pidfile: Option<PathBuf>,

    /// Process name: titles become `heavy-api: master [NAME]` and `heavy-api: worker [NAME]`.
    #[arg(
        short = 'n',
        long = "name",
        value_name = "STRING",
        help_heading = "Process"
    )]
    pub proc_name: Option<String>,

    /// Accepted when it names the user the server runs as; refused otherwise (start the
    /// server as that user instead).
    #[arg(short = 'u', long, value_name = "USER", help_heading = "Process")]
    pub user: Option<String>,

    /// Accepted when it names the group the server runs as; refused otherwise.
    #[arg(short = 'g', long, value_name = "GROUP", help_heading = "Process")]
    pub group: Option<String>,

    /// File mode creation mask, set at start (decimal, or octal as 0o22 / 022).
    #[arg(short = 'm', long, value_name = "MASK", value_parser = parse_umask,
          help_heading = "Process")]
    pub umask: Option<u32>,

    /// Check the configuration (and that the io file could be used) and exit: 0 if valid, 1 if
    /// not. Changes nothing.
    #[arg(long, help_heading = "Process")]
    pub check_config: bool,

    /// Print every setting as `name = value` and exit; `--print-config=json`: one JSON object
    /// (`settings`: name -> value, the same names; `workers_source`; `warnings`) for tools.
    #[arg(long, value_name = "FORMAT", num_args = 0..=1, require_equals = true,
          default_missing_value = "text", value_enum, help_heading = "Process")]
    pub print_config: Option<PrintFormat>,

    /// Robustness tests only: a heavy request with `fault=panic` panics in its handler.
    #[arg(long, hide = true)]
    pub enable_fault_injection: bool,

    /// Robustness tests only: every worker fails its boot, by a panic or a boot error.
    #[arg(long, hide = true, value_parser = ["panic", "error"])]
    pub fault_worker_boot: Option<String>,
}

/// `--print-config[=FORMAT]`: Gunicorn's aligned `name = value` text, or JSON for tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PrintFormat {
    Text,
    Json,
}

/// Most workers `--workers` accepts.
pub const MAX_WORKERS: u32 = 1024;
/// Workers per usable CPU with `--workers auto`: the original ran 4 workers on 2 vCPUs.
pub const WORKERS_PER_CPU: usize = 2;

/// `--workers`: a count, or derived from the CPUs this process may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    Count(u32),
    Auto,
}

fn parse_workers(text: &str) -> Result<Workers, String> {
    if text.eq_ignore_ascii_case("auto") {
        return Ok(Workers::Auto);
    }
    match text.trim().parse::<u32>() {
        Ok(n) if (1..=MAX_WORKERS).contains(&n) => Ok(Workers::Count(n)),
        _ => Err(format!(
            "expected 'auto' or an integer from 1 to {MAX_WORKERS}"
        )),
    }
}

/// Gunicorn's `--umask`: decimal, or octal written `0o22` or `022`.
fn parse_umask(text: &str) -> Result<u32, String> {
    let t = text.trim().to_ascii_lowercase();
    let parsed = if let Some(oct) = t.strip_prefix("0o") {
        u32::from_str_radix(oct, 8)
    } else if t.len() > 1 && t.starts_with('0') {
        u32::from_str_radix(&t[1..], 8)
    } else if let Some(hex) = t.strip_prefix("0x") {
        u32::from_str_radix(hex, 16)
    } else {
        t.parse::<u32>()
    };
    parsed
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| "expected a mask from 0 to 0o777".to_string())
}

/// Durations in whole seconds, up to a week: far past any sensible setting, and far from
/// overflowing the clock arithmetic they feed.
fn seconds() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(0..=7 * 24 * 3600)
}

/// Request counts (`--max-requests` and its jitter).
fn count() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(0..=u64::from(u32::MAX))
}

/// Gunicorn's request limits: 0 means its maximum, larger values are clamped to it, negative
/// ones are refused (as Gunicorn's positive-integer check does).
fn limit() -> clap::builder::RangedI64ValueParser<i64> {
    clap::value_parser!(i64).range(0..=i64::from(i32::MAX))
}

/// Caps on the work one request may ask for.
fn work() -> clap::builder::RangedI64ValueParser<i64> {
    clap::value_parser!(i64).range(0..=1_000_000_000_000)
}

/// Where a listener comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindSpec {
    /// A host (name or address) and port.
    Tcp {
        host: String,
        port: u16,
    },
    Unix(PathBuf),
    /// An already open listening socket, inherited.
    Fd(i32),
}

impl BindSpec {
    /// Whether two listeners would claim the same address: the same path or descriptor, or the
    /// same TCP port (not 0, which picks a free one) on the same host or a wildcard host.
    pub fn overlaps(&self, other: &BindSpec) -> bool {
        let wildcard = |h: &str| matches!(h, "0.0.0.0" | "::" | "");
        match (self, other) {
            (BindSpec::Tcp { host: a, port: p }, BindSpec::Tcp { host: b, port: q }) => {
                p == q && *p != 0 && (a == b || wildcard(a) || wildcard(b))
            }
            (a, b) => a == b,
        }
    }
}

impl fmt::Display for BindSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindSpec::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            BindSpec::Tcp { host, port } => write!(f, "{host}:{port}"),
            BindSpec::Unix(path) => write!(f, "unix:{}", path.display()),
            BindSpec::Fd(fd) => write!(f, "fd://{fd}"),
        }
    }
}

impl BindSpec {
    /// Gunicorn's address forms: `HOST`, `HOST:PORT`, `[V6]:PORT`, `tcp://…`, `unix:PATH`,
    /// `unix://PATH`, `fd://N`. A missing port is 8000.
    pub fn parse(text: &str) -> Result<BindSpec, String> {
        let bad = |why: &str| format!("invalid --bind {text:?}: {why}");
        if let Some(path) = text
            .strip_prefix("unix://")
            .or_else(|| text.strip_prefix("unix:"))
        {
            if path.is_empty() {
                return Err(bad("empty socket path"));
            }
            return Ok(BindSpec::Unix(PathBuf::from(path)));
        }
        if let Some(fd) = text.strip_prefix("fd://") {
            return fd
                .parse::<i32>()
                .ok()
                .filter(|fd| *fd >= 0)
                .map(BindSpec::Fd)
                .ok_or_else(|| bad("not a file descriptor number"));
        }
        let rest = text.strip_prefix("tcp://").unwrap_or(text);
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("missing ']'"))?;
            match after {
                "" => (host, None),
                p => (
                    host,
                    Some(
                        p.strip_prefix(':')
                            .ok_or_else(|| bad("expected ':' after ']'"))?,
                    ),
                ),
            }
        } else if rest.matches(':').count() > 1 {
            return Err(bad("IPv6 addresses need brackets, as [::1]:8000"));
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        let port = match port {
            None => 8000,
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| bad("port must be a number from 0 to 65535"))?,
        };
        Ok(BindSpec::Tcp {
            host: host.to_string(),
            port,
        })
    }
}

/// Every setting, resolved and validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub binds: Vec<BindSpec>,
    pub metrics_bind: Option<BindSpec>,
    pub drain_delay: Duration,
    pub backlog: i32,
    pub workers: usize,
    /// How `--workers auto` found the count (for the boot log); `None` when it was given.
    pub workers_source: Option<String>,
    pub threads: usize,
    /// `None`: derived from descriptors and memory (`worker::accept::connection_limit`).
    pub worker_connections: Option<usize>,
    pub timeout: Option<Duration>,
    pub graceful_timeout: Duration,
    pub keep_alive: Option<Duration>,
    pub max_requests: u64,
    pub max_requests_jitter: u64,
    pub http_limits: HttpLimits,
    pub app_limits: Limits,
    pub io_file: PathBuf,
    pub access_logfile: Option<String>,
    pub access_logformat: String,
    pub error_logfile: String,
    pub log_level: Level,
    pub pidfile: Option<PathBuf>,
    pub proc_name: String,
    pub check_config: bool,
    pub print_config: Option<PrintFormat>,
    /// Robustness tests only (`--fault-worker-boot`): how every worker fails its boot.
    pub fault_worker_boot: Option<String>,
    /// The worker class as Gunicorn's boot line names what runs: `gthread`, or `sync` for
    /// `-k sync` with one thread.
    pub worker_class: &'static str,
    pub statsd: Option<statsd::Target>,
    pub statsd_prefix: String,
    pub dogstatsd_tags: String,
    pub umask: Option<u32>,
    /// The config file that was read, if any.
    pub config_file: Option<String>,
    /// One WARNING each, for the boot log: settings without effect, the APP_MODULE argument,
    /// config-file lines outside the subset.
    pub warnings: Vec<String>,
    args: ServeArgs,
}

/// The arguments of one source (the command line, or the environment's extra arguments) with
/// what heavy-api does not parse taken out.
#[derive(Debug, Default)]
struct Sorted {
    /// For clap.
    kept: Vec<String>,
    /// Gunicorn settings without effect here: (setting name, WARNING).
    ignored: Vec<(String, String)>,
    app_module: Option<String>,
    config: Option<String>,
    /// The arguments are a subcommand's (`healthcheck`): nothing was taken out.
    subcommand: bool,
}

/// Takes out of `args` the Gunicorn settings heavy-api ignores (with their values), `-c FILE`
/// and the `APP_MODULE` argument; everything else is left to clap, in order.
fn sort_arguments(args: &[String]) -> Sorted {
    let command = Cli::command();
    let ours_takes_value = |flag: &str| -> Option<bool> {
        command
            .get_arguments()
            .find(|a| match flag.strip_prefix("--") {
                Some(long) => {
                    a.get_long() == Some(long)
                        || a.get_all_aliases().is_some_and(|al| al.contains(&long))
                }
                None => flag.len() == 2 && a.get_short() == flag.chars().nth(1),
            })
            .map(|a| a.get_action().takes_values() && !a.is_require_equals_set())
    };
    let mut out = Sorted::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            if out.app_module.is_none() {
                out.app_module = args.get(i).cloned();
                i += 1;
            }
            out.kept.extend(args[i..].iter().cloned());
            break;
        }
        if !arg.starts_with('-') || arg == "-" {
            if out.app_module.is_none() && out.kept.is_empty() && arg == "healthcheck" {
                out.subcommand = true;
                out.kept.extend(args[i - 1..].iter().cloned());
                break;
            }
            if out.app_module.is_none() {
                out.app_module = Some(arg.clone());
            } else {
                out.kept.push(arg.clone()); // clap names the extra argument
            }
            continue;
        }
        // The flag's name, and a value written into the same argument.
        let (flag, inline): (&str, Option<String>) = if arg.starts_with("--") {
            match arg.split_once('=') {
                Some((f, v)) => (f, Some(v.to_string())),
                None => (arg.as_str(), None),
            }
        } else {
            let cut = arg.char_indices().nth(2).map_or(arg.len(), |(i, _)| i);
            let rest = &arg[cut..];
            (&arg[..cut], (!rest.is_empty()).then(|| rest.to_string()))
        };
        if flag == "-c" || flag == "--config" {
            out.config = inline.or_else(|| {
                i += 1;
                args.get(i - 1).cloned()
            });
            continue;
        }
        let gunicorn =
            settings::by_flag(flag).filter(|s| matches!(s.support, settings::Support::Ignored(_)));
        if let Some(setting) = gunicorn {
            let value = match setting.takes {
                Takes::Value if inline.is_none() => {
                    i += 1;
                    args.get(i - 1).cloned()
                }
                Takes::OptionalValue if inline.is_none() => {
                    let next = args.get(i).filter(|v| !v.starts_with('-'));
                    let known = ["off", "auto", "v1", "v2", "true", "false"];
                    match next.filter(|v| known.contains(&v.to_ascii_lowercase().as_str())) {
                        Some(v) => {
                            i += 1;
                            Some(v.clone())
                        }
                        None => None,
                    }
                }
                _ => inline,
            };
            let spelled = match value {
                Some(v) => format!("{flag} {v}"),
                None => flag.to_string(),
            };
            if let Some(warning) = settings::ignored_warning(setting, &spelled) {
                out.ignored.push((setting.name.to_string(), warning));
            }
            continue;
        }
        out.kept.push(arg.clone());
        if inline.is_none() && ours_takes_value(flag) == Some(true) && i < args.len() {
            out.kept.push(args[i].clone());
            i += 1;
        }
    }
    out
}

/// A WARNING: the setting (or text) it is keyed by, and its text.
type Warning = (String, String);

/// A config file's settings as command-line arguments (placed before all others, so the
/// environment's and the real ones override them), each checked on its own: a value clap or
/// the bind parser would refuse becomes a WARNING naming its line, never a failed start.
fn config_file_arguments(
    label: &str,
    source: &str,
    env: &dyn Fn(&str) -> Option<String>,
    argv0: &str,
) -> Result<(Vec<String>, Vec<Warning>), String> {
    let cpus = crate::platform::usable_cpus().count;
    let file = crate::gunicorn_conf::parse(label, source, env, cpus)?;
    let mut warnings: Vec<(String, String)> =
        file.warnings.into_iter().map(|w| (w.clone(), w)).collect();
    let mut tokens = Vec::new();
    let last = |name: &str| file.assignments.iter().rposition(|a| a.name == name);
    for (index, a) in file.assignments.iter().enumerate() {
        let Some(setting) = settings::by_name(&a.name) else {
            continue; // a helper variable, as Gunicorn ignores it
        };
        if last(&a.name) != Some(index) || a.value == crate::gunicorn_conf::Value::None {
            continue;
        }
        let spelled = settings::flags(setting);
        let Some(flag) = spelled.iter().rev().find(|f| f.starts_with("--")) else {
            continue;
        };
        if flag == "--config" {
            continue;
        }
        use crate::gunicorn_conf::Value;
        let mut mine = Vec::new();
        match (&setting.takes, &a.value) {
            (Takes::Flag, v) => {
                if v.truthy() {
                    mine.push(flag.to_string());
                }
            }
            (_, Value::List(items)) if setting.name == "bind" => {
                for item in items {
                    mine.push(flag.to_string());
                    mine.push(item.to_string());
                }
            }
            (_, Value::Bool(b)) => {
                mine.push(flag.to_string());
                mine.push(b.to_string());
            }
            (_, Value::Float(x)) if x.fract() == 0.0 => {
                mine.push(flag.to_string());
                mine.push(format!("{}", *x as i64));
            }
            (_, v) => {
                mine.push(flag.to_string());
                mine.push(v.to_string());
            }
        }
        let check = std::iter::once(argv0.to_string()).chain(mine.iter().cloned());
        let problem = match Cli::command().try_get_matches_from(check) {
            Err(err) => Some(first_line(&err)),
            Ok(_) if setting.name == "bind" => mine
                .iter()
                .skip(1)
                .step_by(2)
                .find_map(|b| BindSpec::parse(b).err()),
            Ok(_) if setting.name == "statsd_host" => statsd::parse_target(&mine[1]).err(),
            Ok(_) => None,
        };
        match problem {
            Some(why) => {
                // The setting's name, never its value (it may be a secret).
                let mut why = why;
                for value in mine
                    .iter()
                    .filter(|t| !t.starts_with("--") && !t.is_empty())
                {
                    why = why
                        .replace(&format!("'{value}'"), "'…'")
                        .replace(&format!("{value:?}"), "\"…\"");
                }
                let w = format!("{label}:{}: {}: {why}; ignored", a.line, a.name);
                warnings.push((w.clone(), w));
            }
            None => tokens.extend(mine),
        }
    }
    Ok((tokens, warnings))
}

/// An error in the environment's extra arguments, saying where it came from
/// (`GUNICORN_CMD_ARGS: unexpected argument '--nope' found`), clap's tips and usage kept.
fn from_variable(var: &str, err: clap::Error) -> clap::Error {
    let text = err.render().to_string();
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    clap::Error::raw(err.kind(), format!("{var}: {text}"))
}

/// What the command line asks for.
pub enum Invocation {
    Serve(Box<Config>),
    Healthcheck { url: String, timeout: Duration },
}

impl Config {
    /// Resolves the settings from the process's environment and arguments (`argv[0]` first).
    pub fn from_env_and_args(argv: &[String]) -> Result<Invocation, clap::Error> {
        Config::resolve(argv, &|name| std::env::var(name).ok())
    }

    /// As [`from_env_and_args`](Self::from_env_and_args), reading variables through `env`.
    pub fn resolve(
        argv: &[String],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Invocation, clap::Error> {
        let argv0 = argv.first().cloned().unwrap_or_else(|| "heavy-api".into());
        let (var, extra) = match env(EXTRA_ARGS_ENV) {
            Some(v) => (EXTRA_ARGS_ENV, v),
            None => (
                GUNICORN_EXTRA_ARGS_ENV,
                env(GUNICORN_EXTRA_ARGS_ENV).unwrap_or_default(),
            ),
        };
        let extra = shlex::split(&extra).ok_or_else(|| {
            clap::Error::raw(
                clap::error::ErrorKind::InvalidValue,
                format!("{var}: cannot split the arguments: unbalanced quotes\n"),
            )
        })?;
        let cli = sort_arguments(argv.get(1..).unwrap_or_default());
        if cli.subcommand {
            return Config::healthcheck(argv, env);
        }
        let from_env = sort_arguments(&extra);
        // The environment's arguments are checked on their own first, so an error in them says
        // where it came from.
        let env_only = std::iter::once(argv0.clone()).chain(from_env.kept.iter().cloned());
        if let Err(err) = Cli::command().try_get_matches_from(env_only) {
            return Err(from_variable(var, err));
        }
        // The config file: -c on the command line, else in the environment, else Gunicorn's
        // default file if it exists.
        let config_file = cli.config.clone().or(from_env.config.clone()).or_else(|| {
            std::path::Path::new(DEFAULT_CONFIG_FILE)
                .is_file()
                .then(|| DEFAULT_CONFIG_FILE.to_string())
        });
        let mut warnings: Vec<(String, String)> = Vec::new();
        let mut file_tokens = Vec::new();
        if let Some(path) = &config_file {
            if path.starts_with("python:") {
                warnings.push((
                    "config".into(),
                    format!("-c {path}: a Python module cannot be read without Python; ignored."),
                ));
            } else {
                let refuse = |why: String| {
                    clap::Error::raw(clap::error::ErrorKind::InvalidValue, format!("{why}\n"))
                };
                // One byte more than the bound is read, never the whole of a huge file.
                let mut bytes = Vec::new();
                std::fs::File::open(path)
                    .and_then(|f| {
                        use std::io::Read;
                        f.take(crate::gunicorn_conf::MAX_FILE_BYTES as u64 + 1)
                            .read_to_end(&mut bytes)
                    })
                    .map_err(|e| refuse(format!("cannot read config file {path:?}: {e}")))?;
                let source = crate::gunicorn_conf::text(path, bytes).map_err(refuse)?;
                let (tokens, w) =
                    config_file_arguments(path, &source, env, &argv0).map_err(refuse)?;
                file_tokens = tokens;
                warnings.extend(w);
            }
        }
        // Lowest precedence first: the config file, the environment, the real command line.
        let mut full: Vec<String> = vec![argv0];
        full.extend(file_tokens.iter().cloned());
        full.extend(from_env.kept.iter().cloned());
        full.extend(cli.kept.iter().cloned());
        let matches = Cli::command().try_get_matches_from(&full)?;
        let parsed = Cli::from_arg_matches(&matches)?;
        let mut args = parsed.serve;
        let tiers = [file_tokens.len(), file_tokens.len() + from_env.kept.len()];
        args.bind = binds_with_precedence(&matches, tiers, args.bind);
        for (source, sorted) in [(var, &from_env), ("", &cli)] {
            warnings.extend(sorted.ignored.iter().cloned());
            if let Some(app) = &sorted.app_module {
                let from = if source.is_empty() {
                    String::new()
                } else {
                    format!(" (in ${source})")
                };
                warnings.push((
                    "wsgi_app".into(),
                    format!(
                        "Ignoring the application {app:?}{from}: heavy-api serves its own \
                         application."
                    ),
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        let warnings: Vec<String> = warnings
            .into_iter()
            .filter(|(key, _)| seen.insert(key.clone()))
            .map(|(_, w)| w)
            .collect();
        Config::from_args(args, env)
            .map(|mut c| {
                c.warnings.splice(0..0, warnings);
                c.config_file = config_file;
                Invocation::Serve(Box::new(c))
            })
            .map_err(|msg| Cli::command().error(clap::error::ErrorKind::InvalidValue, msg))
    }

    fn healthcheck(
        argv: &[String],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Invocation, clap::Error> {
        let cli = Cli::try_parse_from(argv)?;
        let Some(Command::Healthcheck { url, timeout }) = cli.command else {
            return Err(Cli::command().error(
                clap::error::ErrorKind::InvalidSubcommand,
                "expected the healthcheck subcommand",
            ));
        };
        if !(timeout.is_finite() && timeout > 0.0) {
            return Err(Cli::command().error(
                clap::error::ErrorKind::InvalidValue,
                "--timeout must be a positive number of seconds",
            ));
        }
        // The server binds 0.0.0.0:$PORT when PORT is set: probe that port.
        let url = url.unwrap_or_else(|| {
            let port = env("PORT").filter(|p| !p.trim().is_empty());
            format!(
                "http://127.0.0.1:{}",
                port.as_deref().unwrap_or("8000").trim()
            )
        });
        Ok(Invocation::Healthcheck {
            url,
            timeout: Duration::from_secs_f64(timeout),
        })
    }

    /// Re-reads the environment and the same arguments (for SIGHUP).
    pub fn reload(argv: &[String]) -> Result<Config, String> {
        match Config::from_env_and_args(argv) {
            Ok(Invocation::Serve(config)) => Ok(*config),
            Ok(Invocation::Healthcheck { .. }) => Err("not a server invocation".into()),
            Err(err) => Err(first_line(&err)),
        }
    }

    fn from_args(args: ServeArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, String> {
        let wanted = match (args.workers, env("WEB_CONCURRENCY")) {
            (Some(w), _) => w,
            (None, Some(text)) if !text.trim().is_empty() => parse_workers(&text)
                .map_err(|why| format!("invalid $WEB_CONCURRENCY {text:?}: {why}"))?,
            (None, _) => Workers::Count(4),
        };
        let (workers, workers_source) = match wanted {
            Workers::Count(n) => (n as usize, None),
            Workers::Auto => {
                let cpus = crate::platform::usable_cpus();
                let n = (cpus.count * WORKERS_PER_CPU).min(MAX_WORKERS as usize);
                (n, Some(format!("{} x {WORKERS_PER_CPU}", cpus.source)))
            }
        };
        let binds = if args.bind.is_empty() {
            match env("PORT") {
                Some(port) if !port.is_empty() => vec![BindSpec::parse(&format!("0.0.0.0:{port}"))
                    .map_err(|e| format!("{e} (from $PORT)"))?],
                _ => vec![BindSpec::Tcp {
                    host: "127.0.0.1".into(),
                    port: 8000,
                }],
            }
        } else {
            args.bind
                .iter()
                .map(|b| BindSpec::parse(b))
                .collect::<Result<_, _>>()?
        };
        let mut warnings = Vec::new();
        let log_level = match args.log_level.parse::<Level>() {
            Ok(level) => level,
            Err(_) => {
                warnings.push(format!(
                    "Unknown --log-level {:?}: using info, as Gunicorn does.",
                    args.log_level
                ));
                Level::Info
            }
        };
        let class = args.worker_class.to_ascii_lowercase();
        let class = class.rsplit(['.', ':']).next().unwrap_or_default();
        let worker_class = match class {
            "sync" | "syncworker" if args.threads == 1 => "sync",
            "gthread" | "threadworker" | "sync" | "syncworker" => "gthread",
            _ => {
                warnings.push(format!(
                    "Worker class {:?} is not available in heavy-api; running the threaded \
                     worker (gthread) instead.",
                    args.worker_class
                ));
                "gthread"
            }
        };
        let statsd = args
            .statsd_host
            .as_deref()
            .map(statsd::parse_target)
            .transpose()?;
        for (flag, name) in [("--user", &args.user), ("--group", &args.group)] {
            if let Some(name) = name {
                check_identity(flag, name)?;
            }
        }
        crate::log::AccessFormat::parse(&args.access_logformat)?;
        let secs = |s: u64| Duration::from_secs(s);
        let metrics_bind = args
            .metrics_bind
            .as_deref()
            .map(BindSpec::parse)
            .transpose()
            .map_err(|e| e.replace("--bind", "--metrics-bind"))?;
        if let Some(m) = &metrics_bind {
            if let Some(b) = binds.iter().find(|b| b.overlaps(m)) {
                return Err(format!(
                    "--metrics-bind {m} is the same address as --bind {b}: the metrics need a \
                     listener of their own"
                ));
            }
        }
        if let Some(bad) = args.dogstatsd_tags.chars().find(|c| c.is_control()) {
            return Err(format!(
                "--dogstatsd-tags must not contain control characters (found {bad:?}): each \
                 tag goes into a statsd datagram line"
            ));
        }
        Ok(Config {
            binds,
            metrics_bind,
            drain_delay: secs(args.drain_delay),
            backlog: args.backlog,
            workers,
            workers_source,
            threads: args.threads as usize,
            worker_connections: args.worker_connections.map(|n| n as usize),
            timeout: (args.timeout > 0).then(|| secs(args.timeout)),
            graceful_timeout: secs(args.graceful_timeout),
            // The sync worker never keeps a connection alive.
            keep_alive: (args.keep_alive > 0 && worker_class != "sync")
                .then(|| secs(args.keep_alive)),
            max_requests: args.max_requests,
            max_requests_jitter: args.max_requests_jitter,
            http_limits: HttpLimits::normalised(
                args.limit_request_line,
                args.limit_request_fields,
                args.limit_request_field_size,
                args.limit_request_head as usize,
                args.limit_request_body,
            ),
            app_limits: Limits {
                max_prime_limit: args.max_prime_limit,
                max_hash_rounds: args.max_hash_rounds,
                max_io_kb: args.max_io_kb,
                fault_injection: args.enable_fault_injection,
            },
            io_file: args
                .io_file
                .clone()
                .unwrap_or_else(|| std::env::temp_dir().join("heavy_api_io.bin")),
            access_logfile: args.access_logfile.clone(),
            access_logformat: args.access_logformat.clone(),
            error_logfile: args.error_logfile.clone(),
            log_level,
            pidfile: args.pidfile.clone(),
            proc_name: args.proc_name.clone().unwrap_or_else(|| "heavy-api".into()),
            check_config: args.check_config,
            print_config: args.print_config,
            fault_worker_boot: args.fault_worker_boot.clone(),
            worker_class,
            statsd,
            statsd_prefix: args.statsd_prefix.clone(),
            dogstatsd_tags: args.dogstatsd_tags.clone(),
            umask: args.umask,
            config_file: None,
            warnings,
            args,
        })
    }

    /// The `Current configuration:` block of the debug log: `  name: value`, one per line.
    pub fn debug_block(&self) -> String {
        self.printable()
            .lines()
            .filter_map(|l| l.split_once(" = "))
            .map(|(n, v)| format!("  {}: {v}", n.trim_end()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Every setting as `name = value`, aligned, in Gunicorn's `--print-config` style.
    pub fn printable(&self) -> String {
        let rows = self.rows();
        let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        rows.iter()
            .map(|(n, v)| format!("{n:<width$} = {v}\n"))
            .collect()
    }

    /// `--print-config=json`: the same settings under the same names as
    /// [`printable`](Self::printable), typed (numbers, booleans, `null` for None, `bind` a
    /// list), with how `--workers auto` counted (`workers_source`, `null` when the count was
    /// given), how many workers `auto` runs per usable CPU (`workers_per_cpu`) and the boot
    /// WARNINGs.
    pub fn printable_json(&self) -> serde_json::Value {
        use serde_json::{json, Value};
        let text = |v: &Option<String>| v.clone().map_or(Value::Null, Value::String);
        let path = |v: &Option<PathBuf>| {
            v.as_ref()
                .map_or(Value::Null, |p| Value::String(p.display().to_string()))
        };
        let mut settings = serde_json::Map::new();
        for (name, printed) in self.rows() {
            let value = match name {
                "accesslog" => text(&self.access_logfile),
                "bind" => json!(self.binds.iter().map(|b| b.to_string()).collect::<Vec<_>>()),
                "check_config" => json!(self.check_config),
                "print_config" => json!(self.print_config.is_some()),
                "config" => text(&self.config_file),
                "keepalive" => json!(self.keep_alive.map_or(0, |k| k.as_secs())),
                "metrics_bind" => text(&self.metrics_bind.as_ref().map(|b| b.to_string())),
                "pidfile" => path(&self.pidfile),
                "statsd_host" => text(&self.statsd.as_ref().map(|t| t.to_string())),
                "umask" => self.umask.map_or(Value::Null, |m| json!(m)),
                "worker_connections" => self.worker_connections.map_or(Value::Null, |n| json!(n)),
                "access_log_format" | "dogstatsd_tags" | "errorlog" | "io_file" | "loglevel"
                | "proc_name" | "statsd_prefix" | "worker_class" => Value::String(printed),
                // Every other row is a number.
                _ => printed
                    .parse::<u64>()
                    .map_or(Value::String(printed), |n| json!(n)),
            };
            settings.insert(name.to_string(), value);
        }
        json!({
            "settings": settings,
            "workers_source": self.workers_source,
            "workers_per_cpu": WORKERS_PER_CPU,
            "warnings": self.warnings,
        })
    }

    /// Every setting's name and its `--print-config` text, sorted by name.
    fn rows(&self) -> Vec<(&'static str, String)> {
        let a = &self.args;
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "None".into());
        let path = |v: &Option<PathBuf>| {
            v.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "None".into())
        };
        let binds: Vec<String> = self.binds.iter().map(|b| format!("'{b}'")).collect();
        let rows: Vec<(&'static str, String)> = vec![
            ("access_log_format", self.access_logformat.clone()),
            ("accesslog", opt(&self.access_logfile)),
            ("backlog", self.backlog.to_string()),
            ("bind", format!("[{}]", binds.join(", "))),
            ("check_config", self.check_config.to_string()),
            ("drain_delay", a.drain_delay.to_string()),
            ("errorlog", self.error_logfile.clone()),
            ("config", opt(&self.config_file)),
            ("dogstatsd_tags", self.dogstatsd_tags.clone()),
            ("graceful_timeout", a.graceful_timeout.to_string()),
            ("io_file", self.io_file.display().to_string()),
            (
                "keepalive",
                self.keep_alive.map_or(0, |k| k.as_secs()).to_string(),
            ),
            ("limit_request_body", self.http_limits.body.to_string()),
            (
                "limit_request_field_size",
                a.limit_request_field_size.to_string(),
            ),
            ("limit_request_fields", a.limit_request_fields.to_string()),
            ("limit_request_head", self.http_limits.head.to_string()),
            ("limit_request_line", a.limit_request_line.to_string()),
            ("loglevel", a.log_level.clone()),
            (
                "max_hash_rounds",
                self.app_limits.max_hash_rounds.to_string(),
            ),
            ("max_io_kb", self.app_limits.max_io_kb.to_string()),
            (
                "max_prime_limit",
                self.app_limits.max_prime_limit.to_string(),
            ),
            ("max_requests", self.max_requests.to_string()),
            ("max_requests_jitter", self.max_requests_jitter.to_string()),
            (
                "metrics_bind",
                self.metrics_bind
                    .as_ref()
                    .map_or("None".into(), |b| format!("'{b}'")),
            ),
            ("pidfile", path(&self.pidfile)),
            ("print_config", self.print_config.is_some().to_string()),
            ("proc_name", self.proc_name.clone()),
            ("threads", self.threads.to_string()),
            ("timeout", a.timeout.to_string()),
            (
                "statsd_host",
                self.statsd
                    .as_ref()
                    .map_or("None".into(), |t| t.to_string()),
            ),
            ("statsd_prefix", self.statsd_prefix.clone()),
            (
                "umask",
                self.umask.map_or("None".into(), |m| format!("{m:#o}")),
            ),
            ("worker_class", self.worker_class.to_string()),
            (
                "worker_connections",
                self.worker_connections
                    .map_or("None (the descriptor limit)".into(), |n| n.to_string()),
            ),
            ("workers", self.workers.to_string()),
        ];
        let mut rows = rows;
        rows.sort_by_key(|(n, _)| *n);
        rows
    }
}

/// `--bind` is the one repeatable setting: the binds of the highest-precedence source that has
/// any (the command line, then the environment's extra arguments, then the config file) replace
/// the others' instead of adding to them. `tiers` are where the config file's and the
/// environment's arguments end (argv[0] is index 0).
fn binds_with_precedence(
    matches: &ArgMatches,
    tiers: [usize; 2],
    binds: Vec<String>,
) -> Vec<String> {
    let Some(indices) = matches.indices_of("bind") else {
        return binds;
    };
    let tier = |i: usize| tiers.iter().filter(|&&end| i > end).count();
    let indices: Vec<usize> = indices.collect();
    let Some(top) = indices.iter().map(|&i| tier(i)).max() else {
        return binds;
    };
    binds
        .into_iter()
        .zip(indices)
        .filter(|&(_, i)| tier(i) == top)
        .map(|(b, _)| b)
        .collect()
}

/// `--user` / `--group`: heavy-api does not switch identity, so the only safe value is the one
/// it already runs as (by name or number).
fn check_identity(flag: &str, wanted: &str) -> Result<(), String> {
    // SAFETY: plain libc queries; the returned records are read before any other call.
    let (current, matches) = unsafe {
        if flag == "--user" {
            let uid = libc::geteuid();
            let name = std::ffi::CString::new(wanted).unwrap_or_default();
            let pw = libc::getpwnam(name.as_ptr());
            let by_name = !pw.is_null() && (*pw).pw_uid == uid;
            (uid, by_name || wanted.parse::<u32>() == Ok(uid))
        } else {
            let gid = libc::getegid();
            let name = std::ffi::CString::new(wanted).unwrap_or_default();
            let gr = libc::getgrnam(name.as_ptr());
            let by_name = !gr.is_null() && (*gr).gr_gid == gid;
            (gid, by_name || wanted.parse::<u32>() == Ok(gid))
        }
    };
    if matches {
        Ok(())
    } else {
        Err(format!(
            "{flag} {wanted}: heavy-api does not switch users, and running on as id {current} \
             instead would be unsafe; start it as {wanted} (e.g. USER in the Dockerfile)"
        ))
    }
}

/// A clap error as the single line a Gunicorn user expects (`Error: ...`).
pub fn first_line(err: &clap::Error) -> String {
    let text = err.to_string();
    let line = text.lines().next().unwrap_or("invalid arguments");
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<String> {
        std::iter::once("heavy-api")
            .chain(args.iter().copied())
            .map(String::from)
            .collect()
    }

    fn serve_with(args: &[&str], vars: &[(&str, &str)]) -> Result<Config, clap::Error> {
        let vars: std::collections::HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match Config::resolve(&argv(args), &|name| vars.get(name).cloned())? {
            Invocation::Serve(c) => Ok(*c),
            Invocation::Healthcheck { .. } => panic!("not a serve invocation"),
        }
    }

    fn serve(args: &[&str]) -> Config {
        serve_with(args, &[]).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn bind_forms() {
        assert_eq!(
            BindSpec::parse("0.0.0.0:80"),
            Ok(BindSpec::Tcp {
                host: "0.0.0.0".into(),
                port: 80
            })
        );
        assert_eq!(
            BindSpec::parse("localhost"),
            Ok(BindSpec::Tcp {
                host: "localhost".into(),
                port: 8000
            })
        );
        assert_eq!(
            BindSpec::parse("[::1]:9000"),
            Ok(BindSpec::Tcp {
                host: "::1".into(),
                port: 9000
            })
        );
        assert_eq!(
            BindSpec::parse("tcp://127.0.0.1:1"),
            Ok(BindSpec::Tcp {
                host: "127.0.0.1".into(),
                port: 1
            })
        );
        assert_eq!(
            BindSpec::parse("unix:/tmp/s.sock"),
            Ok(BindSpec::Unix("/tmp/s.sock".into()))
        );
        assert_eq!(
            BindSpec::parse("unix:///tmp/s.sock"),
            Ok(BindSpec::Unix("/tmp/s.sock".into()))
        );
        assert_eq!(BindSpec::parse("fd://3"), Ok(BindSpec::Fd(3)));
        for bad in [
            "fd://x",
            "1.2.3.4:99999",
            "::1:80",
            "[::1",
            ":80",
            "unix:",
            "h:port",
        ] {
            assert!(BindSpec::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            BindSpec::Tcp {
                host: "::1".into(),
                port: 1
            }
            .to_string(),
            "[::1]:1"
        );
    }

    #[test]
    fn defaults_environment_and_command_line_precedence() {
        let c = serve(&[]);
        assert_eq!(c.workers, 4);
        assert_eq!(c.threads, 2);
        assert_eq!(c.timeout, Some(Duration::from_secs(120)));
        assert_eq!(c.graceful_timeout, Duration::from_secs(30));
        assert_eq!(c.keep_alive, Some(Duration::from_secs(2)));
        assert_eq!(c.backlog, 2048);
        assert_eq!(c.worker_connections, None, "follows the descriptor limit");
        assert_eq!(c.http_limits, HttpLimits::default());
        assert_eq!(
            c.binds,
            vec![BindSpec::Tcp {
                host: "127.0.0.1".into(),
                port: 8000
            }]
        );

        let env = [("WEB_CONCURRENCY", "3"), ("PORT", "9123")];
        let c = serve_with(&[], &env).unwrap();
        assert_eq!(c.workers, 3);
        assert_eq!(
            c.binds,
            vec![BindSpec::Tcp {
                host: "0.0.0.0".into(),
                port: 9123
            }]
        );

        let gunicorn = (
            "GUNICORN_CMD_ARGS",
            "--workers 2 --threads 5 -b 127.0.0.1:1",
        );
        let c = serve_with(&[], &[env[0], env[1], gunicorn]).unwrap();
        assert_eq!((c.workers, c.threads), (2, 5));
        assert_eq!(
            c.binds,
            vec![BindSpec::Tcp {
                host: "127.0.0.1".into(),
                port: 1
            }]
        );
        let ours = (EXTRA_ARGS_ENV, "--workers 6");
        assert_eq!(
            serve_with(&[], &[gunicorn, ours]).unwrap().workers,
            6,
            "ours is preferred"
        );

        let c = serve_with(
            &["-w", "5", "-b", "127.0.0.1:2", "--bind", "unix:/tmp/x"],
            &[gunicorn],
        )
        .unwrap();
        assert_eq!((c.workers, c.threads), (5, 5));
        assert_eq!(c.binds.len(), 2, "real --bind replaces the environment's");

        assert!(serve_with(&[], &[(EXTRA_ARGS_ENV, "--workers 'unbalanced")]).is_err());
        assert!(serve_with(&[], &[("WEB_CONCURRENCY", "many")]).is_err());
        assert!(serve_with(&[], &[("WEB_CONCURRENCY", "0")]).is_err());
        assert!(serve_with(&[], &[("PORT", "http")]).is_err());
    }

    #[test]
    fn bad_values_are_one_line_errors() {
        for args in [
            &["--workers", "0"][..],
            &["--threads", "x"],
            &["--bind", "nope:port"],
            &["--timeout", "-1"],
            &["--max-io-kb", "-5"],
            &["--no-such-flag"],
            &["--access-logformat", "%(h"],
        ] {
            let err = match Config::from_env_and_args(&argv(args)) {
                Err(e) => e,
                Ok(_) => panic!("{args:?} should fail"),
            };
            let line = first_line(&err);
            assert!(!line.is_empty() && !line.contains('\n'), "{args:?}: {line}");
        }
    }

    #[test]
    fn log_levels_are_case_insensitive_and_unknown_ones_are_info() {
        let c = serve(&["--log-level", "DEBUG"]);
        assert_eq!(c.log_level, Level::Debug);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let c = serve(&["--log-level", "loud"]);
        assert_eq!(c.log_level, Level::Info);
        assert!(
            c.warnings[0].contains("Unknown --log-level \"loud\""),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn gunicorn_flag_spellings_are_accepted() {
        let c = serve(&[
            "--limit-request-field_size",
            "100",
            "--limit-request-line",
            "0",
            "--log-file",
            "-",
            "-k",
            "sync",
            "--worker-tmp-dir",
            "/dev/shm",
            "--forwarded-allow-ips",
            "*",
            "-n",
            "x",
            "--keep-alive",
            "0",
            "-t",
            "0",
        ]);
        assert_eq!(c.http_limits.field_size, 100);
        assert_eq!(c.http_limits.request_line, 8190);
        assert_eq!(c.keep_alive, None);
        assert_eq!(c.timeout, None);
    }

    #[test]
    fn print_config_lists_every_setting() {
        let text = serve(&["--workers", "2"]).printable();
        assert!(text.contains("workers                  = 2\n"), "{text}");
        assert!(
            text.contains("bind                     = ['127.0.0.1:8000']\n"),
            "{text}"
        );
        assert!(text.lines().count() >= 25);
    }

    #[test]
    fn print_config_json_has_the_text_forms_names_typed_and_merged() {
        // GUNICORN_CMD_ARGS sets --workers and --keep-alive; the command line overrides the
        // keep-alive; PORT gives the bind; WEB_CONCURRENCY loses to the explicit count.
        let env = [
            (
                "GUNICORN_CMD_ARGS",
                "--workers 6 --keep-alive 5 --umask 022",
            ),
            ("PORT", "9000"),
            ("WEB_CONCURRENCY", "3"),
        ];
        let c = serve_with(
            &["--print-config=json", "--keep-alive", "75", "app:app"],
            &env,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.print_config, Some(PrintFormat::Json));
        let j = c.printable_json();
        let s = j["settings"].as_object().unwrap();
        let text = c.printable();
        let text_names: Vec<&str> = text
            .lines()
            .map(|l| l.split(" = ").next().unwrap().trim_end())
            .collect();
        assert_eq!(s.keys().map(|k| k.as_str()).collect::<Vec<_>>(), text_names);
        assert_eq!(s["workers"], 6);
        assert_eq!(s["keepalive"], 75);
        assert_eq!(s["bind"], serde_json::json!(["0.0.0.0:9000"]));
        assert_eq!(s["umask"], 0o22);
        assert_eq!(s["pidfile"], serde_json::Value::Null);
        assert_eq!(s["print_config"], true);
        assert_eq!(s["graceful_timeout"], 30);
        assert_eq!(
            s["io_file"]
                .as_str()
                .map(|p| p.ends_with("heavy_api_io.bin")),
            Some(true)
        );
        assert_eq!(j["workers_source"], serde_json::Value::Null);
        assert_eq!(j["workers_per_cpu"], WORKERS_PER_CPU);
        let warnings = j["warnings"].as_array().unwrap();
        assert!(
            warnings
                .iter()
                .any(|w| w.as_str().unwrap().contains("app:app")),
            "{warnings:?}"
        );
        let auto = serve(&["--workers", "auto"]).printable_json();
        assert!(auto["workers_source"].is_string(), "{auto}");
    }

    #[test]
    fn print_config_takes_its_format_only_after_an_equals_sign() {
        // Plain --print-config is Gunicorn's flag: the next argument is not its value.
        let c = serve(&["--print-config", "app:app", "-w", "2"]);
        assert_eq!(c.print_config, Some(PrintFormat::Text));
        assert_eq!(c.workers, 2);
        let c = serve(&["--print-config", "-w", "2"]);
        assert_eq!(c.print_config, Some(PrintFormat::Text));
        assert_eq!(
            serve(&["--print-config=text"]).print_config,
            Some(PrintFormat::Text)
        );
        assert!(serve_with(&["--print-config=yaml"], &[]).is_err());
        assert_eq!(serve(&[]).print_config, None);
    }

    /// Every numeric flag, at every extreme: either a one-line error naming the flag, or a
    /// configuration whose derived values (deadlines, jitter) cannot overflow.
    #[test]
    fn every_numeric_flag_at_its_extremes_is_an_error_or_safe() {
        let extremes = [
            "-9223372036854775809",
            "-9223372036854775808",
            "-1",
            "0",
            "1",
            "65535",
            "65536",
            "604800",
            "604801",
            "2147483647",
            "2147483648",
            "4294967295",
            "4294967296",
            "9223372036854775807",
            "18446744073709551615",
            "18446744073709551616",
            "1e3",
            "",
        ];
        let command = Cli::command();
        let numeric: Vec<String> = command
            .get_arguments()
            .filter(|a| {
                a.get_value_names()
                    .is_some_and(|v| v.len() == 1 && v[0].starts_with("INT"))
            })
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .collect();
        assert_eq!(numeric.len(), 18, "{numeric:?}");
        for flag in &numeric {
            for value in extremes {
                match serve_with(&[flag.as_str(), value], &[]) {
                    Err(err) => {
                        let line = first_line(&err);
                        assert!(
                            line.contains(flag.as_str()) && !line.contains('\n'),
                            "{flag} {value:?}: {line}"
                        );
                    }
                    Ok(c) => {
                        let now = std::time::Instant::now();
                        for d in [
                            c.timeout.unwrap_or_default(),
                            c.graceful_timeout,
                            c.keep_alive.unwrap_or_default(),
                        ] {
                            assert!(now.checked_add(d * 2).is_some(), "{flag} {value}");
                        }
                        assert!(c.max_requests.checked_add(c.max_requests_jitter).is_some());
                        assert!(c.max_requests_jitter.checked_add(1).is_some());
                        assert!(c.http_limits.body.checked_mul(2).is_some());
                        assert!(c.workers >= 1 && c.threads >= 1 && c.backlog >= 1);
                    }
                }
            }
        }
    }

    #[test]
    fn the_healthcheck_probes_port_when_set() {
        let check = |vars: &[(&str, &str)], args: &[&str]| {
            let vars: std::collections::HashMap<String, String> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            match Config::resolve(&argv(args), &|n| vars.get(n).cloned()).unwrap() {
                Invocation::Healthcheck { url, .. } => url,
                Invocation::Serve(_) => panic!("not a healthcheck"),
            }
        };
        assert_eq!(check(&[], &["healthcheck"]), "http://127.0.0.1:8000");
        assert_eq!(
            check(&[("PORT", "18407")], &["healthcheck"]),
            "http://127.0.0.1:18407"
        );
        assert_eq!(
            check(&[("PORT", "18407")], &["healthcheck", "http://h:1/"]),
            "http://h:1/"
        );
    }

    #[test]
    fn workers_auto_is_two_per_usable_cpu() {
        let c = serve(&["--workers", "auto"]);
        let cpus = crate::platform::usable_cpus();
        assert_eq!(c.workers, 2 * cpus.count);
        assert_eq!(
            c.workers_source.as_deref(),
            Some(format!("{} x 2", cpus.source).as_str())
        );
        let c = serve_with(&[], &[("WEB_CONCURRENCY", "auto")]).unwrap();
        assert_eq!(c.workers, 2 * cpus.count);
        let c = serve_with(&["-w", "3"], &[("WEB_CONCURRENCY", "auto")]).unwrap();
        assert_eq!((c.workers, c.workers_source), (3, None), "the flag wins");
        assert!(serve_with(&["--workers", "automatic"], &[]).is_err());
    }
}
