//! The settings table: every setting, declared once.
//!
//! One row per setting: Gunicorn's name (the config-file variable), its command-line
//! spellings, how it is written, what heavy-api does with it ([`Support`]: Gunicorn's meaning,
//! accepted with a WARNING and no effect, guarded, or heavy-api's own), its type and range
//! ([`Kind`]), its default ([`Initial`]) and the variable that default reads, and its help
//! line. The clap command ([`super::command`]), the config file's mapping
//! ([`super::sources`]) and the table in `docs/GUNICORN_SETTINGS.md` ([`super::doc`]) are all
//! built from it; nothing else lists settings.
//!
//! heavy-api takes Gunicorn command lines and config files as they are: each of Gunicorn's
//! settings (21.2 and the current releases) is either implemented, accepted with one WARNING at
//! boot saying why it has no effect here, or — only where going on would be unsafe — refused
//! with the reason.

use super::DEFAULT_ACCESS_LOG_FORMAT;

/// How a setting is written on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    /// A switch (`--preload`).
    Flag,
    /// One value (`--chdir DIR`, `--chdir=DIR`); repeatable ones too (`-e K=V -e K=V`).
    Value,
    /// An optional value (`--proxy-protocol`, `--proxy-protocol=v2`).
    OptionalValue,
    /// Only in a config file (hooks, dictionaries).
    FileOnly,
}

/// What heavy-api does with a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Applied, with Gunicorn's meaning (the text says where it differs).
    Implemented(&'static str),
    /// Accepted and ignored, with one WARNING at boot giving this reason.
    Ignored(&'static str),
    /// Applied where it is harmless, refused (the server does not start) where accepting it
    /// would be unsafe; the text says which is which.
    Guarded(&'static str),
    /// heavy-api's own, not a Gunicorn setting: the command line and the environment's extra
    /// arguments only (a Gunicorn config file would not know it).
    HeavyApi,
}

/// A setting's value type, and the range clap checks it against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A switch: `bool`.
    Switch,
    /// A `String`.
    Text,
    /// Repeatable `String`s (`--bind`).
    List,
    /// An `i64` from `.0` to `.1`.
    Int(i64, i64),
    /// [`super::Workers`]: a count or `auto`.
    Workers,
    /// A file mode mask: `u32`, decimal or octal.
    Umask,
    /// [`super::PrintFormat`], given only after `=`.
    PrintFormat,
    /// A `String` out of these.
    OneOf(&'static [&'static str]),
}

/// Durations in whole seconds, up to a week: far past any sensible setting, and far from
/// overflowing the clock arithmetic they feed.
const SECONDS: Kind = Kind::Int(0, 7 * 24 * 3600);
/// Request counts (`--max-requests` and its jitter).
const COUNT: Kind = Kind::Int(0, u32::MAX as i64);
/// Gunicorn's request limits: 0 means its maximum, larger values are clamped to it, negative
/// ones are refused (as Gunicorn's positive-integer check does).
const LIMIT: Kind = Kind::Int(0, i32::MAX as i64);
/// Caps on the work one request may ask for.
const WORK: Kind = Kind::Int(0, 1_000_000_000_000);

/// A setting's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initial {
    /// None: the setting is off or empty until given.
    Unset,
    /// This value, parsed as if given (clap's default).
    Is(&'static str),
    /// Worked out when the settings are resolved (from the environment, the machine); the text
    /// says how, for `--help` and the docs.
    Derived(&'static str),
}

pub struct Setting {
    /// Gunicorn's name (the config-file variable); heavy-api's own settings are named alike.
    /// It is also the setting's id in clap.
    pub name: &'static str,
    /// Its command-line spellings.
    pub cli: &'static [&'static str],
    pub takes: Takes,
    pub support: Support,
    /// Implemented settings: the type and range.
    pub kind: Kind,
    pub initial: Initial,
    /// The environment variable the default reads (not an override: see [`super::sources`]).
    pub env: Option<&'static str>,
    /// `--help`'s name for the value.
    pub value_name: &'static str,
    /// `--help`'s section.
    pub heading: &'static str,
    /// The `--help` line, and the docs'.
    pub help: &'static str,
    /// Left out of `--help` and the docs (robustness tests only).
    pub hidden: bool,
}

impl Setting {
    /// Whether heavy-api applies it (or refuses it): it is then a typed flag of the command.
    pub fn is_applied(&self) -> bool {
        !matches!(self.support, Support::Ignored(_))
    }

    /// The spelling the docs and config-file values use: the first long one.
    pub fn long(&self) -> Option<&'static str> {
        self.cli.iter().copied().find(|f| f.starts_with("--"))
    }
}

use Initial::{Derived, Is};
use Support::{Guarded, HeavyApi, Ignored, Implemented};
use Takes::{FileOnly, Flag, OptionalValue, Value};

/// `--help`'s sections, in order.
pub const SOCKET: &str = "Server socket";
pub const WORKERS: &str = "Worker processes";
pub const LIMITS: &str = "Request limits";
pub const HEAVY: &str = "Heavy endpoint";
pub const LOGGING: &str = "Logging";
pub const PROCESS: &str = "Process";

/// What a row leaves out: a value setting.
const VALUE: Setting = Setting {
    name: "",
    cli: &[],
    takes: Value,
    support: HeavyApi,
    kind: Kind::Text,
    initial: Initial::Unset,
    env: None,
    value_name: "STRING",
    heading: "",
    help: "",
    hidden: false,
};
/// What a row leaves out: a switch.
const SWITCH: Setting = Setting {
    takes: Flag,
    kind: Kind::Switch,
    value_name: "",
    ..VALUE
};

const NO_PYTHON: &str = "heavy-api runs no Python: there is no application to import";
const HOOK: &str = "server hooks are Python functions; heavy-api runs no Python";
const NO_TLS: &str =
    "heavy-api serves plain HTTP only; terminate TLS in front of it (the load balancer)";
const PARSER: &str = "heavy-api's HTTP parser has one fixed, strict behaviour (see docs/API.md)";
const NO_SYSLOG: &str = "heavy-api logs to files or the standard streams only";
const NO_HTTP2: &str = "heavy-api speaks HTTP/1.0 and HTTP/1.1 only";
const NO_ASGI: &str = "heavy-api has no ASGI worker";
const NO_DIRTY: &str = "heavy-api has no dirty-arbiter worker pool";
const NO_CONTROL: &str = "heavy-api has no control socket; use signals (docs/API.md)";
const LOG_CONFIG: &str =
    "logging is configured by --error-logfile, --access-logfile and --log-level only";

/// A Gunicorn setting heavy-api does not apply: its spellings, how it is written, why.
macro_rules! gunicorn {
    ($name:literal, [$($cli:literal),*], $takes:expr, $support:expr) => {
        Setting { name: $name, cli: &[$($cli),*], takes: $takes, support: $support, ..VALUE }
    };
}

/// Every setting: Gunicorn's, in Gunicorn's order, with heavy-api's own beside their nearest
/// relatives.
pub const SETTINGS: &[Setting] = &[
    Setting {
        name: "config",
        cli: &["-c", "--config"],
        support: Implemented("the plain-assignment subset of a gunicorn.conf.py (above)"),
        kind: Kind::Text,
        initial: Derived("./gunicorn.conf.py when it exists"),
        value_name: "FILE",
        heading: PROCESS,
        help: "Read settings from this gunicorn.conf.py (the subset in docs/GUNICORN_SETTINGS.md)",
        ..VALUE
    },
    gunicorn!("wsgi_app", [], FileOnly, Ignored("heavy-api serves its own application (as for the APP_MODULE argument)")),
    Setting {
        name: "bind",
        cli: &["-b", "--bind"],
        support: Implemented("HOST:PORT, [V6]:PORT, unix:PATH, fd://N; repeatable"),
        kind: Kind::List,
        initial: Derived("127.0.0.1:8000, or 0.0.0.0:$PORT when PORT is set"),
        env: Some("PORT"),
        value_name: "ADDRESS",
        heading: SOCKET,
        help: "Socket to bind: HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N. Repeat for several.",
        ..VALUE
    },
    Setting {
        name: "metrics_bind",
        cli: &["--metrics-bind"],
        support: HeavyApi,
        kind: Kind::Text,
        value_name: "ADDRESS",
        heading: SOCKET,
        help: "Serve `/metrics` on this address only (HOST:PORT, unix:PATH; not one of the --bind addresses); the main listeners then answer `/metrics` with 404, so a load balancer never reaches it",
        ..VALUE
    },
    Setting {
        name: "backlog",
        cli: &["--backlog"],
        support: Implemented("listen backlog"),
        kind: Kind::Int(1, 65535),
        initial: Is("2048"),
        value_name: "INT",
        heading: SOCKET,
        help: "Maximum number of pending connections (listen backlog)",
        ..VALUE
    },
    Setting {
        name: "workers",
        cli: &["-w", "--workers"],
        support: Implemented("also `auto`; the default is 4, not 1"),
        kind: Kind::Workers,
        initial: Derived("$WEB_CONCURRENCY, else 4"),
        env: Some("WEB_CONCURRENCY"),
        value_name: "INT|auto",
        heading: WORKERS,
        help: "Number of worker processes, or `auto`: two per usable CPU (the cgroup CPU quota rounded up, else the CPU affinity, else the CPU count).",
        ..VALUE
    },
    Setting {
        name: "worker_class",
        cli: &["-k", "--worker-class"],
        support: Implemented("gthread runs the threaded worker; sync runs it too (with --threads 1: one request at a time and no keep-alive, as sync); any other class is warned about and runs the threaded worker"),
        kind: Kind::Text,
        initial: Is("gthread"),
        value_name: "STRING",
        heading: WORKERS,
        help: "Worker class: `gthread`, or `sync` (the same threaded worker; with --threads 1 it serves one request at a time without keep-alive, as sync does). Others are warned about and run as gthread",
        ..VALUE
    },
    Setting {
        name: "threads",
        cli: &["--threads"],
        support: Implemented("the default is 2, not 1"),
        kind: Kind::Int(1, 1024),
        initial: Is("2"),
        value_name: "INT",
        heading: WORKERS,
        help: "Handler threads per worker (the heavy requests a worker runs at once)",
        ..VALUE
    },
    Setting {
        name: "worker_connections",
        cli: &["--worker-connections"],
        support: Implemented("the default is derived from descriptors and memory, not 1000; at the limit the least productive connection is evicted"),
        kind: Kind::Int(1, 1_000_000),
        initial: Derived("what the descriptors allow and what keeps all workers' unfinished heads within 256 MiB, or a quarter of the memory limit"),
        value_name: "INT",
        heading: WORKERS,
        help: "Most connections one worker holds open (active and keep-alive). At the limit a worker closes its least productive connection (silent longest, no complete request) to make room, or leaves new ones in the listen backlog (with a WARNING) when every one is working.",
        ..VALUE
    },
    Setting {
        name: "max_requests",
        cli: &["--max-requests"],
        support: Implemented("worker recycling"),
        kind: COUNT,
        initial: Is("0"),
        value_name: "INT",
        heading: WORKERS,
        help: "Restart a worker after it has handled this many requests (0: never)",
        ..VALUE
    },
    Setting {
        name: "max_requests_jitter",
        cli: &["--max-requests-jitter"],
        support: Implemented("random 0..=N added per worker"),
        kind: COUNT,
        initial: Is("0"),
        value_name: "INT",
        heading: WORKERS,
        help: "Add a random 0..=N to --max-requests per worker, so workers do not restart together",
        ..VALUE
    },
    Setting {
        name: "timeout",
        cli: &["-t", "--timeout"],
        support: Implemented("a per-request limit (503) as well as the worker heartbeat; the default is 120, not 30"),
        kind: SECONDS,
        initial: Is("120"),
        value_name: "INT",
        heading: WORKERS,
        help: "Seconds a heavy request may run before it is answered 503 and stopped; a worker that stops making progress for this long is killed and replaced. 0 disables both",
        ..VALUE
    },
    Setting {
        name: "graceful_timeout",
        cli: &["--graceful-timeout"],
        support: Implemented(""),
        kind: SECONDS,
        initial: Is("30"),
        value_name: "INT",
        heading: WORKERS,
        help: "Seconds workers get to finish their requests after a stop or restart signal, before they are killed",
        ..VALUE
    },
    Setting {
        name: "drain_delay",
        cli: &["--drain-delay"],
        support: HeavyApi,
        kind: SECONDS,
        initial: Is("0"),
        value_name: "INT",
        heading: WORKERS,
        help: "On TERM, first answer `/heavy/ready/` with 503 and keep serving everything for this many seconds (so load balancers stop routing here), then stop gracefully",
        ..VALUE
    },
    Setting {
        name: "keepalive",
        cli: &["--keep-alive"],
        support: Implemented("0 disables keep-alive"),
        kind: SECONDS,
        initial: Is("2"),
        value_name: "INT",
        heading: WORKERS,
        help: "Seconds an idle keep-alive connection is kept open. 0 disables keep-alive",
        ..VALUE
    },
    Setting {
        name: "limit_request_line",
        cli: &["--limit-request-line"],
        support: Implemented(""),
        kind: LIMIT,
        initial: Is("4094"),
        value_name: "INT",
        heading: LIMITS,
        help: "Longest request line in bytes (0: 8190). Longer lines get 400",
        ..VALUE
    },
    Setting {
        name: "limit_request_fields",
        cli: &["--limit-request-fields"],
        support: Implemented(""),
        kind: LIMIT,
        initial: Is("100"),
        value_name: "INT",
        heading: LIMITS,
        help: "Most header fields in a request (0: 32768). More get 431",
        ..VALUE
    },
    Setting {
        name: "limit_request_field_size",
        cli: &["--limit-request-field_size", "--limit-request-field-size"],
        support: Implemented(""),
        kind: LIMIT,
        initial: Is("8190"),
        value_name: "INT",
        heading: LIMITS,
        help: "Longest header line in bytes, CRLF included as Gunicorn counts it (0: 65536). Longer ones get 431",
        ..VALUE
    },
    Setting {
        name: "limit_request_head",
        cli: &["--limit-request-head"],
        support: HeavyApi,
        kind: Kind::Int(1024, 16 * 1024 * 1024),
        initial: Is("65536"),
        value_name: "INT",
        heading: LIMITS,
        help: "Largest request head in bytes, request line and header lines together (not a Gunicorn setting: without it a head could reach fields x field size). Larger ones get 431",
        ..VALUE
    },
    Setting {
        name: "limit_request_body",
        cli: &["--limit-request-body"],
        support: HeavyApi,
        kind: Kind::Int(0, 1 << 40),
        initial: Is("1048576"),
        value_name: "INT",
        heading: LIMITS,
        help: "Largest request body in bytes (bodies are read and discarded). Larger ones get 413",
        ..VALUE
    },
    Setting {
        name: "max_prime_limit",
        cli: &["--max-prime-limit"],
        support: HeavyApi,
        kind: WORK,
        initial: Is("10000000"),
        value_name: "INT",
        heading: HEAVY,
        help: "Largest prime_limit a request may ask for",
        ..VALUE
    },
    Setting {
        name: "max_hash_rounds",
        cli: &["--max-hash-rounds"],
        support: HeavyApi,
        kind: WORK,
        initial: Is("20000000"),
        value_name: "INT",
        heading: HEAVY,
        help: "Largest hash_rounds a request may ask for",
        ..VALUE
    },
    Setting {
        name: "max_io_kb",
        cli: &["--max-io-kb"],
        support: HeavyApi,
        kind: Kind::Int(0, 1024 * 1024),
        initial: Is("4096"),
        value_name: "INT",
        heading: HEAVY,
        help: "Largest io_kb a request may ask for",
        ..VALUE
    },
    Setting {
        name: "io_file",
        cli: &["--io-file"],
        support: HeavyApi,
        kind: Kind::Text,
        initial: Derived("<system temp dir>/heavy_api_io.bin"),
        value_name: "FILE",
        heading: HEAVY,
        help: "The data file every heavy request appends to and reads from.",
        ..VALUE
    },
    gunicorn!("reload", ["--reload"], Flag, Ignored("there is no Python code to watch; restart the process (or send HUP) instead")),
    gunicorn!("reload_engine", ["--reload-engine"], Value, Ignored("there is no Python code to watch")),
    gunicorn!("reload_extra_files", ["--reload-extra-file"], Value, Ignored("there is no Python code to watch")),
    gunicorn!("spew", ["--spew"], Flag, Ignored("it traces Python statements; heavy-api runs no Python")),
    Setting {
        name: "check_config",
        cli: &["--check-config"],
        support: Implemented("also checks the log file paths, the io file and that bind hosts resolve"),
        kind: Kind::Switch,
        heading: PROCESS,
        help: "Check the configuration (and that the io file could be used) and exit: 0 if valid, 1 if not. Changes nothing",
        ..SWITCH
    },
    Setting {
        name: "print_config",
        cli: &["--print-config"],
        takes: Flag,
        support: Implemented("shows what actually runs; `--print-config=json`: the same settings as one JSON object, with the warnings, for tools"),
        kind: Kind::PrintFormat,
        value_name: "FORMAT",
        heading: PROCESS,
        help: "Print every setting as `name = value` and exit; `--print-config=json`: one JSON object (`settings`: name -> value, the same names; `workers_source`; `warnings`) for tools",
        ..VALUE
    },
    Setting {
        name: "enable_fault_injection",
        cli: &["--enable-fault-injection"],
        support: HeavyApi,
        kind: Kind::Switch,
        hidden: true,
        help: "Robustness tests only: a heavy request with `fault=panic` panics in its handler",
        ..SWITCH
    },
    Setting {
        name: "fault_worker_boot",
        cli: &["--fault-worker-boot"],
        support: HeavyApi,
        kind: Kind::OneOf(&["panic", "error"]),
        hidden: true,
        help: "Robustness tests only: every worker fails its boot, by a panic or a boot error",
        value_name: "FAULT_WORKER_BOOT",
        ..VALUE
    },
    gunicorn!("preload_app", ["--preload"], Flag, Ignored("there is no application to preload: heavy-api's is compiled in")),
    gunicorn!("sendfile", ["--no-sendfile"], Flag, Ignored("heavy-api serves no files")),
    gunicorn!("reuse_port", ["--reuse-port"], Flag, Ignored("the master binds each listener once and the workers share it")),
    gunicorn!("chdir", ["--chdir"], Value, Ignored("it exists to find the Python application; relative paths stay relative to the start directory")),
    gunicorn!("daemon", ["-D", "--daemon"], Flag, Ignored("heavy-api stays in the foreground (containers and supervisors need that)")),
    gunicorn!("raw_env", ["-e", "--env"], Value, Ignored("the variables would be for the Python application; heavy-api's reads none")),
    Setting {
        name: "pidfile",
        cli: &["-p", "--pid"],
        support: Implemented(""),
        kind: Kind::Text,
        value_name: "FILE",
        heading: PROCESS,
        help: "Write the master's pid to this file (refused if it names a live process)",
        ..VALUE
    },
    gunicorn!("worker_tmp_dir", ["--worker-tmp-dir"], Value, Ignored("worker heartbeats live in shared memory, not in files")),
    Setting {
        name: "user",
        cli: &["-u", "--user"],
        support: Guarded("accepted when it names the user the server already runs as; refused otherwise, since running on as a more privileged user than asked would be unsafe (start as that user instead)"),
        kind: Kind::Text,
        value_name: "USER",
        heading: PROCESS,
        help: "Accepted when it names the user the server runs as; refused otherwise (start the server as that user instead)",
        ..VALUE
    },
    Setting {
        name: "group",
        cli: &["-g", "--group"],
        support: Guarded("accepted when it names the group the server already runs as; refused otherwise, for the same reason as --user"),
        kind: Kind::Text,
        value_name: "GROUP",
        heading: PROCESS,
        help: "Accepted when it names the group the server runs as; refused otherwise",
        ..VALUE
    },
    Setting {
        name: "umask",
        cli: &["-m", "--umask"],
        support: Implemented("applied at start (decimal, or octal with a leading 0 / 0o)"),
        kind: Kind::Umask,
        value_name: "MASK",
        heading: PROCESS,
        help: "File mode creation mask, set at start (decimal, or octal as 0o22 / 022)",
        ..VALUE
    },
    gunicorn!("initgroups", ["--initgroups"], Flag, Ignored("heavy-api does not switch users, so there are no groups to initialise")),
    gunicorn!("tmp_upload_dir", [], FileOnly, Ignored("request bodies are read and discarded, never stored")),
    gunicorn!("secure_scheme_headers", [], FileOnly, Ignored("the API's answers do not depend on the client's scheme")),
    gunicorn!("forwarded_allow_ips", ["--forwarded-allow-ips"], Value, Ignored("the API's answers do not depend on the client's scheme, and wsgi.url_scheme is always http")),
    Setting {
        name: "accesslog",
        cli: &["--access-logfile"],
        support: Implemented(""),
        kind: Kind::Text,
        initial: Derived("no access log"),
        value_name: "FILE",
        heading: LOGGING,
        help: "Access log file; '-' for stdout.",
        ..VALUE
    },
    gunicorn!("disable_redirect_access_to_syslog", ["--disable-redirect-access-to-syslog"], Flag, Ignored(NO_SYSLOG)),
    Setting {
        name: "access_log_format",
        cli: &["--access-logformat"],
        support: Implemented("every Gunicorn atom"),
        kind: Kind::Text,
        initial: Is(DEFAULT_ACCESS_LOG_FORMAT),
        value_name: "STRING",
        heading: LOGGING,
        help: "Access log format, with Gunicorn's atoms (%(h)s, %(r)s, %(s)s, %(D)s, %({header}i)s, ...)",
        ..VALUE
    },
    Setting {
        name: "errorlog",
        cli: &["--error-logfile", "--log-file"],
        support: Implemented(""),
        kind: Kind::Text,
        initial: Is("-"),
        value_name: "FILE",
        heading: LOGGING,
        help: "Error log file; '-' for stderr",
        ..VALUE
    },
    Setting {
        name: "loglevel",
        cli: &["--log-level"],
        support: Implemented("case-insensitive; an unknown level is info, as in Gunicorn (with a WARNING)"),
        kind: Kind::Text,
        initial: Is("info"),
        value_name: "LEVEL",
        heading: LOGGING,
        help: "Error log level: debug, info, warning, error or critical, in any case (anything else is info, as in Gunicorn)",
        ..VALUE
    },
    gunicorn!("capture_output", ["--capture-output"], Flag, Ignored("there is no application output to capture")),
    gunicorn!("logger_class", ["--logger-class"], Value, Ignored("it names a Python class; heavy-api's logger is built in (statsd is enabled by --statsd-host, as in Gunicorn)")),
    gunicorn!("logconfig", ["--log-config"], Value, Ignored(LOG_CONFIG)),
    gunicorn!("logconfig_dict", [], FileOnly, Ignored(LOG_CONFIG)),
    gunicorn!("logconfig_json", ["--log-config-json"], Value, Ignored(LOG_CONFIG)),
    gunicorn!("syslog_addr", ["--log-syslog-to"], Value, Ignored(NO_SYSLOG)),
    gunicorn!("syslog", ["--log-syslog"], Flag, Ignored(NO_SYSLOG)),
    gunicorn!("syslog_prefix", ["--log-syslog-prefix"], Value, Ignored(NO_SYSLOG)),
    gunicorn!("syslog_facility", ["--log-syslog-facility"], Value, Ignored(NO_SYSLOG)),
    gunicorn!("enable_stdio_inheritance", ["-R", "--enable-stdio-inheritance"], Flag, Ignored("heavy-api's standard streams are unbuffered lines already")),
    Setting {
        name: "statsd_host",
        cli: &["--statsd-host"],
        support: Implemented("HOST:PORT (port 8125 if omitted) or unix:PATH; Gunicorn's metric names and wire format"),
        kind: Kind::Text,
        value_name: "STATSD_ADDR",
        heading: LOGGING,
        help: "Send Gunicorn's statsd metrics to HOST:PORT (UDP; port 8125 if omitted) or unix:PATH",
        ..VALUE
    },
    Setting {
        name: "dogstatsd_tags",
        cli: &["--dogstatsd-tags"],
        support: Implemented(""),
        kind: Kind::Text,
        initial: Is(""),
        value_name: "DOGSTATSD_TAGS",
        heading: LOGGING,
        help: "Comma-separated dogstatsd tags appended to every statsd metric (no control characters)",
        ..VALUE
    },
    Setting {
        name: "statsd_prefix",
        cli: &["--statsd-prefix"],
        support: Implemented(""),
        kind: Kind::Text,
        initial: Is(""),
        value_name: "STATSD_PREFIX",
        heading: LOGGING,
        help: "Prefix for the statsd metric names (a trailing '.' is added; no control characters)",
        ..VALUE
    },
    gunicorn!("enable_backlog_metric", ["--enable-backlog-metric"], Flag, Ignored("the listen backlog is not measured; /metrics has the request queue instead")),
    Setting {
        name: "proc_name",
        cli: &["-n", "--name"],
        support: Implemented("process titles `heavy-api: master [NAME]` / `heavy-api: worker [NAME]`"),
        kind: Kind::Text,
        initial: Derived("heavy-api"),
        value_name: "STRING",
        heading: PROCESS,
        help: "Process name: titles become `heavy-api: master [NAME]` and `heavy-api: worker [NAME]`",
        ..VALUE
    },
    gunicorn!("default_proc_name", [], FileOnly, Ignored("the default process name is heavy-api")),
    gunicorn!("pythonpath", ["--pythonpath"], Value, Ignored(NO_PYTHON)),
    gunicorn!("paste", ["--paste", "--paster"], Value, Ignored(NO_PYTHON)),
    gunicorn!("on_starting", [], FileOnly, Ignored(HOOK)),
    gunicorn!("on_reload", [], FileOnly, Ignored(HOOK)),
    gunicorn!("when_ready", [], FileOnly, Ignored(HOOK)),
    gunicorn!("pre_fork", [], FileOnly, Ignored(HOOK)),
    gunicorn!("post_fork", [], FileOnly, Ignored(HOOK)),
    gunicorn!("post_worker_init", [], FileOnly, Ignored(HOOK)),
    gunicorn!("worker_int", [], FileOnly, Ignored(HOOK)),
    gunicorn!("worker_abort", [], FileOnly, Ignored(HOOK)),
    gunicorn!("pre_exec", [], FileOnly, Ignored(HOOK)),
    gunicorn!("pre_request", [], FileOnly, Ignored(HOOK)),
    gunicorn!("post_request", [], FileOnly, Ignored(HOOK)),
    gunicorn!("child_exit", [], FileOnly, Ignored(HOOK)),
    gunicorn!("worker_exit", [], FileOnly, Ignored(HOOK)),
    gunicorn!("nworkers_changed", [], FileOnly, Ignored(HOOK)),
    gunicorn!("on_exit", [], FileOnly, Ignored(HOOK)),
    gunicorn!("ssl_context", [], FileOnly, Ignored(NO_TLS)),
    gunicorn!("proxy_protocol", ["--proxy-protocol"], OptionalValue, Ignored("PROXY protocol headers are not parsed; put heavy-api behind a proxy that sends plain HTTP")),
    gunicorn!("proxy_allow_ips", ["--proxy-allow-from"], Value, Ignored("PROXY protocol headers are not parsed")),
    gunicorn!("protocol", ["--protocol"], Value, Ignored("heavy-api speaks HTTP only (no uwsgi)")),
    gunicorn!("uwsgi_allow_ips", ["--uwsgi-allow-from"], Value, Ignored("heavy-api speaks HTTP only (no uwsgi)")),
    gunicorn!("keyfile", ["--keyfile"], Value, Ignored(NO_TLS)),
    gunicorn!("certfile", ["--certfile"], Value, Ignored(NO_TLS)),
    gunicorn!("ssl_version", ["--ssl-version"], Value, Ignored(NO_TLS)),
    gunicorn!("cert_reqs", ["--cert-reqs"], Value, Ignored(NO_TLS)),
    gunicorn!("ca_certs", ["--ca-certs"], Value, Ignored(NO_TLS)),
    gunicorn!("suppress_ragged_eofs", ["--suppress-ragged-eofs"], Flag, Ignored(NO_TLS)),
    gunicorn!("do_handshake_on_connect", ["--do-handshake-on-connect"], Flag, Ignored(NO_TLS)),
    gunicorn!("ciphers", ["--ciphers"], Value, Ignored(NO_TLS)),
    gunicorn!("http_protocols", ["--http-protocols"], Value, Ignored(NO_HTTP2)),
    gunicorn!("http2_cleartext", ["--http2-cleartext"], Value, Ignored(NO_HTTP2)),
    gunicorn!("http2_max_concurrent_streams", ["--http2-max-concurrent-streams"], Value, Ignored(NO_HTTP2)),
    gunicorn!("http2_initial_window_size", ["--http2-initial-window-size"], Value, Ignored(NO_HTTP2)),
    gunicorn!("http2_max_frame_size", ["--http2-max-frame-size"], Value, Ignored(NO_HTTP2)),
    gunicorn!("http2_max_header_list_size", ["--http2-max-header-list-size"], Value, Ignored(NO_HTTP2)),
    gunicorn!("raw_paste_global_conf", ["--paste-global"], Value, Ignored(NO_PYTHON)),
    gunicorn!("permit_obsolete_folding", ["--permit-obsolete-folding"], Flag, Ignored(PARSER)),
    gunicorn!("strip_header_spaces", ["--strip-header-spaces"], Flag, Ignored(PARSER)),
    gunicorn!("permit_unconventional_http_method", ["--permit-unconventional-http-method"], Flag, Ignored(PARSER)),
    gunicorn!("permit_unconventional_http_version", ["--permit-unconventional-http-version"], Flag, Ignored(PARSER)),
    gunicorn!("casefold_http_method", ["--casefold-http-method"], Flag, Ignored(PARSER)),
    gunicorn!("forwarder_headers", ["--forwarder-headers"], Value, Ignored("no request header is mapped into the request environment beyond HTTP_*")),
    gunicorn!("header_map", ["--header-map"], Value, Ignored(PARSER)),
    gunicorn!("asgi_loop", ["--asgi-loop"], Value, Ignored(NO_ASGI)),
    gunicorn!("asgi_lifespan", ["--asgi-lifespan"], Value, Ignored(NO_ASGI)),
    gunicorn!("asgi_disconnect_grace_period", ["--asgi-disconnect-grace-period"], Value, Ignored(NO_ASGI)),
    gunicorn!("http_parser", ["--http-parser"], Value, Ignored(PARSER)),
    gunicorn!("root_path", ["--root-path"], Value, Ignored("the API is served at the root; SCRIPT_NAME is always empty")),
    gunicorn!("dirty_apps", ["--dirty-app"], Value, Ignored(NO_DIRTY)),
    gunicorn!("dirty_workers", ["--dirty-workers"], Value, Ignored(NO_DIRTY)),
    gunicorn!("dirty_timeout", ["--dirty-timeout"], Value, Ignored(NO_DIRTY)),
    gunicorn!("dirty_threads", ["--dirty-threads"], Value, Ignored(NO_DIRTY)),
    gunicorn!("dirty_graceful_timeout", ["--dirty-graceful-timeout"], Value, Ignored(NO_DIRTY)),
    gunicorn!("on_dirty_starting", [], FileOnly, Ignored(HOOK)),
    gunicorn!("dirty_post_fork", [], FileOnly, Ignored(HOOK)),
    gunicorn!("dirty_worker_init", [], FileOnly, Ignored(HOOK)),
    gunicorn!("dirty_worker_exit", [], FileOnly, Ignored(HOOK)),
    gunicorn!("control_socket", ["--control-socket"], Value, Ignored(NO_CONTROL)),
    gunicorn!("control_socket_mode", ["--control-socket-mode"], Value, Ignored(NO_CONTROL)),
    gunicorn!("control_socket_disable", ["--no-control-socket"], Flag, Ignored(NO_CONTROL)),
];

/// The setting named `name` (its config-file name).
pub fn by_name(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

/// The setting a command-line spelling belongs to (`--keep-alive`, `-D`).
pub fn by_flag(flag: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.cli.contains(&flag))
}

/// The one WARNING line for an ignored setting.
pub fn ignored_warning(setting: &Setting, spelled: &str) -> Option<String> {
    match setting.support {
        Support::Ignored(why) => Some(format!("{spelled} has no effect in heavy-api: {why}.")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_flags_are_unique_and_well_formed() {
        let mut names = std::collections::HashSet::new();
        let mut flags = std::collections::HashSet::new();
        for s in SETTINGS {
            assert!(names.insert(s.name), "{} twice", s.name);
            for f in s.cli {
                assert!(flags.insert(*f), "{f} twice");
                assert!(
                    f.starts_with("--") || (f.len() == 2 && f.starts_with('-')),
                    "{f}"
                );
            }
            assert_eq!(s.cli.is_empty(), s.takes == Takes::FileOnly, "{}", s.name);
            if s.is_applied() {
                assert!(!s.help.is_empty() && s.long().is_some(), "{}", s.name);
                // A switch is written as one (the config file's True), a value as a value.
                let switch = matches!(s.kind, Kind::Switch | Kind::PrintFormat);
                assert_eq!(switch, s.takes == Flag, "{}", s.name);
            }
        }
        let gunicorn = SETTINGS.iter().filter(|s| s.support != HeavyApi).count();
        // Gunicorn 21.2 has 90 settings; 26.1 has all of these.
        assert_eq!(gunicorn, 119, "Gunicorn 26.1 has 119 settings");
    }

    /// The defaults written in the table are the ones the code's types have.
    #[test]
    fn literal_defaults_agree_with_the_code() {
        let limits = crate::app::Limits::default();
        for (name, value) in [
            ("max_prime_limit", limits.max_prime_limit.to_string()),
            ("max_hash_rounds", limits.max_hash_rounds.to_string()),
            ("max_io_kb", limits.max_io_kb.to_string()),
            (
                "limit_request_head",
                crate::http::DEFAULT_HEAD_LIMIT.to_string(),
            ),
        ] {
            assert_eq!(by_name(name).unwrap().initial, Is(value.leak()), "{name}");
        }
    }
}
