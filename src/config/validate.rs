//! From the winning values to a [`Config`]: defaults that depend on the environment or the
//! machine worked out, and every check that spans a value or several (bind forms, `--user`,
//! the access-log format, a metrics address of its own, statsd text).

use super::command::{parse_workers, Workers, MAX_WORKERS, WORKERS_PER_CPU};
use super::sources::Layers;
use super::{table, BindSpec, Config, Raw};
use crate::app::Limits;
use crate::http::HttpLimits;
use crate::log::Level;
use crate::statsd;
use std::path::PathBuf;
use std::time::Duration;

/// The variable a setting's default reads (the table's `env`).
fn default_variable(name: &str) -> &'static str {
    table::by_name(name).and_then(|s| s.env).unwrap_or_default()
}

/// The winning values, typed as the table's kinds say (ranges already checked by clap).
struct Args {
    bind: Vec<String>,
    metrics_bind: Option<String>,
    backlog: i32,
    workers: Option<Workers>,
    threads: u32,
    worker_class: String,
    worker_connections: Option<u32>,
    timeout: u64,
    graceful_timeout: u64,
    drain_delay: u64,
    keep_alive: u64,
    max_requests: u64,
    max_requests_jitter: u64,
    limit_request_line: i64,
    limit_request_fields: i64,
    limit_request_field_size: i64,
    limit_request_head: u64,
    limit_request_body: u64,
    max_prime_limit: i64,
    max_hash_rounds: i64,
    max_io_kb: i64,
    io_file: Option<PathBuf>,
    access_logfile: Option<String>,
    access_logformat: String,
    error_logfile: String,
    log_level: String,
    statsd_host: Option<String>,
    statsd_prefix: String,
    dogstatsd_tags: String,
    pidfile: Option<PathBuf>,
    proc_name: Option<String>,
    user: Option<String>,
    group: Option<String>,
    umask: Option<u32>,
    check_config: bool,
    print_config: Option<super::PrintFormat>,
    enable_fault_injection: bool,
    fault_worker_boot: Option<String>,
}

impl Args {
    fn read(l: &Layers) -> Args {
        let int = |id: &str| l.one::<i64>(id).unwrap_or_default();
        let text = |id: &str| l.one::<String>(id);
        Args {
            bind: l.all("bind"),
            metrics_bind: text("metrics_bind"),
            backlog: int("backlog") as i32,
            workers: l.one::<Workers>("workers"),
            threads: int("threads") as u32,
            worker_class: text("worker_class").unwrap_or_default(),
            worker_connections: l.one::<i64>("worker_connections").map(|n| n as u32),
            timeout: int("timeout") as u64,
            graceful_timeout: int("graceful_timeout") as u64,
            drain_delay: int("drain_delay") as u64,
            keep_alive: int("keepalive") as u64,
            max_requests: int("max_requests") as u64,
            max_requests_jitter: int("max_requests_jitter") as u64,
            limit_request_line: int("limit_request_line"),
            limit_request_fields: int("limit_request_fields"),
            limit_request_field_size: int("limit_request_field_size"),
            limit_request_head: int("limit_request_head") as u64,
            limit_request_body: int("limit_request_body") as u64,
            max_prime_limit: int("max_prime_limit"),
            max_hash_rounds: int("max_hash_rounds"),
            max_io_kb: int("max_io_kb"),
            io_file: text("io_file").map(PathBuf::from),
            access_logfile: text("accesslog"),
            access_logformat: text("access_log_format").unwrap_or_default(),
            error_logfile: text("errorlog").unwrap_or_default(),
            log_level: text("loglevel").unwrap_or_default(),
            statsd_host: text("statsd_host"),
            statsd_prefix: text("statsd_prefix").unwrap_or_default(),
            dogstatsd_tags: text("dogstatsd_tags").unwrap_or_default(),
            pidfile: text("pidfile").map(PathBuf::from),
            proc_name: text("proc_name"),
            user: text("user"),
            group: text("group"),
            umask: l.one::<u32>("umask"),
            check_config: l.switch("check_config"),
            print_config: l.one::<super::PrintFormat>("print_config"),
            enable_fault_injection: l.switch("enable_fault_injection"),
            fault_worker_boot: text("fault_worker_boot"),
        }
    }
}

impl Config {
    /// The settings as they run: the winning values read, what defaults to the environment or
    /// the machine worked out, every value checked.
    pub(super) fn from_layers(
        layers: &Layers,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, String> {
        let args = Args::read(layers);
        let wanted = match (args.workers, env(default_variable("workers"))) {
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
            match env(default_variable("bind")) {
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
        // A newline would end the statsd line and let the rest pass as a forged metric.
        for (flag, text, what) in [
            ("--dogstatsd-tags", &args.dogstatsd_tags, "each tag"),
            ("--statsd-prefix", &args.statsd_prefix, "the prefix"),
        ] {
            if let Some(bad) = text.chars().find(|c| c.is_control()) {
                return Err(format!(
                    "{flag} must not contain control characters (found {bad:?}): {what} goes \
                     into a statsd datagram line"
                ));
            }
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
            raw: Raw {
                drain_delay: args.drain_delay,
                graceful_timeout: args.graceful_timeout,
                timeout: args.timeout,
                limit_request_line: args.limit_request_line,
                limit_request_fields: args.limit_request_fields,
                limit_request_field_size: args.limit_request_field_size,
                log_level: args.log_level,
            },
        })
    }
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
