//! The command line and the settings it resolves to.
//!
//! Flag names, meanings and precedence are Gunicorn's: built-in defaults (some read
//! `WEB_CONCURRENCY` and `PORT`) < the config file (`-c FILE`, default `./gunicorn.conf.py`;
//! see [`crate::gunicorn_conf`]) < the extra arguments in `HEAVY_API_CMD_ARGS` (or
//! `GUNICORN_CMD_ARGS`) < the real command line. The defaults differ from Gunicorn's only where
//! the original service's production settings did: 4 workers, 2 threads, a 120 s timeout.
//!
//! - [`table`]: every setting, declared once (Gunicorn's and heavy-api's own);
//! - [`command`]: the clap command built from it;
//! - [`sources`]: the three sources parsed by that command, and the one precedence rule;
//! - `validate`: the winning values checked and worked out into a [`Config`];
//! - `print`: `--print-config`; [`bind`]: listener addresses; `doc`: the settings docs.

pub mod bind;
pub mod command;
pub mod doc;
mod print;
pub mod sources;
pub mod table;
mod validate;

pub use bind::BindSpec;
pub use command::{Cli, PrintFormat, Workers, MAX_WORKERS, WORKERS_PER_CPU};

use crate::app::Limits;
use crate::http::HttpLimits;
use crate::log::Level;
use crate::statsd;
use clap::error::ErrorKind;
use sources::Layers;
use std::path::PathBuf;
use std::time::Duration;

pub const EXTRA_ARGS_ENV: &str = "HEAVY_API_CMD_ARGS";
pub const GUNICORN_EXTRA_ARGS_ENV: &str = "GUNICORN_CMD_ARGS";
/// Gunicorn's default config file, read when it exists and no `-c` is given.
pub const DEFAULT_CONFIG_FILE: &str = "./gunicorn.conf.py";
pub const DEFAULT_ACCESS_LOG_FORMAT: &str =
    r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#;

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
    /// Values `--print-config` shows as they were given.
    raw: Raw,
}

/// Settings `--print-config` shows as given rather than as they run.
#[derive(Debug, Clone)]
struct Raw {
    drain_delay: u64,
    graceful_timeout: u64,
    timeout: u64,
    limit_request_line: i64,
    limit_request_fields: i64,
    limit_request_field_size: i64,
    log_level: String,
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
        // Usage lines name the program as it was run.
        let name = std::path::Path::new(&argv0)
            .file_name()
            .map_or("heavy-api".into(), |n| n.to_string_lossy().into_owned());
        let cmd = command::command().bin_name(name);
        // The command line, parsed once (`--help`, `--version` and its errors end here).
        let cli = cmd.clone().try_get_matches_from(argv)?;
        if let Some(("healthcheck", sub)) = cli.subcommand() {
            return Config::healthcheck(sub, env);
        }
        let (var, extra) = sources::extra_arguments(env)?;
        let from_env = cmd
            .clone()
            .try_get_matches_from(std::iter::once(argv0).chain(extra))
            .map_err(|err| sources::from_variable(var, err))?;
        if from_env.subcommand().is_some() {
            return Err(sources::from_variable(
                var,
                cmd.clone().error(
                    ErrorKind::InvalidSubcommand,
                    "a subcommand is not a setting",
                ),
            ));
        }
        let mut layers = Layers {
            cli,
            env: from_env,
            // No file yet: its values are read next, into this layer.
            file: cmd.clone().get_matches_from(["heavy-api"]),
        };
        // The config file: -c on the command line, else in the environment, else Gunicorn's
        // default file if it exists.
        let config_file = layers.one::<String>("config").or_else(|| {
            std::path::Path::new(DEFAULT_CONFIG_FILE)
                .is_file()
                .then(|| DEFAULT_CONFIG_FILE.to_string())
        });
        let mut warnings: Vec<sources::Warning> = Vec::new();
        if let Some(path) = &config_file {
            if path.starts_with("python:") {
                warnings.push((
                    "config".into(),
                    format!("-c {path}: a Python module cannot be read without Python; ignored."),
                ));
            } else {
                let (file, w) = sources::config_file(&cmd, path, env)
                    .map_err(|why| clap::Error::raw(ErrorKind::InvalidValue, format!("{why}\n")))?;
                layers.file = file;
                warnings.extend(w);
            }
        }
        warnings.extend(sources::ignored_warnings(&layers.env, var));
        warnings.extend(sources::ignored_warnings(&layers.cli, ""));
        // One WARNING per setting, the first source's.
        let mut seen = std::collections::HashSet::new();
        let warnings: Vec<String> = warnings
            .into_iter()
            .filter(|(key, _)| seen.insert(key.clone()))
            .map(|(_, w)| w)
            .collect();
        Config::from_layers(&layers, env)
            .map(|mut c| {
                c.warnings.splice(0..0, warnings);
                c.config_file = config_file;
                Invocation::Serve(Box::new(c))
            })
            .map_err(|msg| cmd.clone().error(ErrorKind::InvalidValue, msg))
    }

    fn healthcheck(
        sub: &clap::ArgMatches,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Invocation, clap::Error> {
        let timeout = sub.get_one::<f64>("timeout").copied().unwrap_or(3.0);
        if !(timeout.is_finite() && timeout > 0.0) {
            return Err(command::command().error(
                ErrorKind::InvalidValue,
                "--timeout must be a positive number of seconds",
            ));
        }
        // The server binds 0.0.0.0:$PORT when PORT is set: probe that port.
        let url = sub.get_one::<String>("url").cloned().unwrap_or_else(|| {
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
}

/// A clap error as the single line a Gunicorn user expects (`Error: ...`).
pub fn first_line(err: &clap::Error) -> String {
    let text = err.to_string();
    let line = text.lines().next().unwrap_or("invalid arguments");
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

#[cfg(test)]
mod tests;
