//! `--print-config` (Gunicorn's aligned `name = value` text, or JSON for tools) and the debug
//! log's `Current configuration:` block: every setting as it runs.

use super::{Config, WORKERS_PER_CPU};
use std::path::PathBuf;

impl Config {
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
        let a = &self.raw;
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
