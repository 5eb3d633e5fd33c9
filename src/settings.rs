//! Every Gunicorn setting, and what heavy-api does with it.
//!
//! heavy-api takes Gunicorn command lines and config files as they are: each of Gunicorn's
//! settings (21.2 and the current releases) is either implemented, accepted with one WARNING at
//! boot saying why it has no effect here, or — only where going on would be unsafe — refused
//! with the reason. The table in `docs/GUNICORN_SETTINGS.md` is rendered from [`SETTINGS`]
//! (a unit test keeps the two equal).

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
}

pub struct Setting {
    /// Gunicorn's name (the config-file variable).
    pub name: &'static str,
    /// Its command-line spellings, for settings heavy-api does not parse itself. A setting it
    /// implements names its clap argument instead (`arg`), whose spellings, type, default and
    /// help are declared once, in `config::ServeArgs`; [`flags`] gives either.
    pub cli: &'static [&'static str],
    /// The `config::ServeArgs` argument that implements the setting.
    pub arg: Option<&'static str>,
    pub takes: Takes,
    pub support: Support,
}

use Support::{Guarded, Ignored, Implemented};
use Takes::{FileOnly, Flag, OptionalValue, Value};

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

macro_rules! s {
    ($name:literal, [$($cli:literal),*], $takes:expr, $support:expr) => {
        Setting { name: $name, cli: &[$($cli),*], arg: None, takes: $takes, support: $support }
    };
    ($name:literal, arg $arg:literal, $takes:expr, $support:expr) => {
        Setting { name: $name, cli: &[], arg: Some($arg), takes: $takes, support: $support }
    };
}

/// Every Gunicorn setting, in Gunicorn's order.
pub const SETTINGS: &[Setting] = &[
    s!("config", ["-c", "--config"], Value, Implemented("the plain-assignment subset of a gunicorn.conf.py (docs/GUNICORN_SETTINGS.md); default ./gunicorn.conf.py when it exists")),
    s!("wsgi_app", [], FileOnly, Ignored("heavy-api serves its own application (as for the APP_MODULE argument)")),
    s!("bind", arg "bind", Value, Implemented("HOST:PORT, [V6]:PORT, unix:PATH, fd://N; repeatable")),
    s!("backlog", arg "backlog", Value, Implemented("listen backlog")),
    s!("workers", arg "workers", Value, Implemented("default $WEB_CONCURRENCY, else 4; also `auto`")),
    s!("worker_class", arg "worker_class", Value, Implemented("gthread runs the threaded worker; sync runs it too (with --threads 1: one request at a time and no keep-alive, as sync); any other class is warned about and runs the threaded worker")),
    s!("threads", arg "threads", Value, Implemented("handler threads per worker; default 2")),
    s!("worker_connections", arg "worker_connections", Value, Implemented("open connections per worker; by default what the descriptors allow and what keeps all workers' unfinished heads within 256 MiB (or a quarter of the memory limit); at the limit the least productive connection is evicted")),
    s!("max_requests", arg "max_requests", Value, Implemented("worker recycling")),
    s!("max_requests_jitter", arg "max_requests_jitter", Value, Implemented("random 0..=N added per worker")),
    s!("timeout", arg "timeout", Value, Implemented("per-request limit (503) and worker heartbeat; default 120")),
    s!("graceful_timeout", arg "graceful_timeout", Value, Implemented("")),
    s!("keepalive", arg "keep_alive", Value, Implemented("0 disables keep-alive")),
    s!("limit_request_line", arg "limit_request_line", Value, Implemented("")),
    s!("limit_request_fields", arg "limit_request_fields", Value, Implemented("")),
    s!("limit_request_field_size", arg "limit_request_field_size", Value, Implemented("")),
    s!("reload", ["--reload"], Flag, Ignored("there is no Python code to watch; restart the process (or send HUP) instead")),
    s!("reload_engine", ["--reload-engine"], Value, Ignored("there is no Python code to watch")),
    s!("reload_extra_files", ["--reload-extra-file"], Value, Ignored("there is no Python code to watch")),
    s!("spew", ["--spew"], Flag, Ignored("it traces Python statements; heavy-api runs no Python")),
    s!("check_config", arg "check_config", Flag, Implemented("also checks the log file paths, the io file and that bind hosts resolve")),
    s!("print_config", arg "print_config", Flag, Implemented("shows what actually runs; `--print-config=json`: the same settings as one JSON object, with the warnings, for tools")),
    s!("preload_app", ["--preload"], Flag, Ignored("there is no application to preload: heavy-api's is compiled in")),
    s!("sendfile", ["--no-sendfile"], Flag, Ignored("heavy-api serves no files")),
    s!("reuse_port", ["--reuse-port"], Flag, Ignored("the master binds each listener once and the workers share it")),
    s!("chdir", ["--chdir"], Value, Ignored("it exists to find the Python application; relative paths stay relative to the start directory")),
    s!("daemon", ["-D", "--daemon"], Flag, Ignored("heavy-api stays in the foreground (containers and supervisors need that)")),
    s!("raw_env", ["-e", "--env"], Value, Ignored("the variables would be for the Python application; heavy-api's reads none")),
    s!("pidfile", arg "pidfile", Value, Implemented("")),
    s!("worker_tmp_dir", ["--worker-tmp-dir"], Value, Ignored("worker heartbeats live in shared memory, not in files")),
    s!("user", arg "user", Value, Guarded("accepted when it names the user the server already runs as; refused otherwise, since running on as a more privileged user than asked would be unsafe (start as that user instead)")),
    s!("group", arg "group", Value, Guarded("accepted when it names the group the server already runs as; refused otherwise, for the same reason as --user")),
    s!("umask", arg "umask", Value, Implemented("applied at start (decimal, or octal with a leading 0 / 0o)")),
    s!("initgroups", ["--initgroups"], Flag, Ignored("heavy-api does not switch users, so there are no groups to initialise")),
    s!("tmp_upload_dir", [], FileOnly, Ignored("request bodies are read and discarded, never stored")),
    s!("secure_scheme_headers", [], FileOnly, Ignored("the API's answers do not depend on the client's scheme")),
    s!("forwarded_allow_ips", ["--forwarded-allow-ips"], Value, Ignored("the API's answers do not depend on the client's scheme, and wsgi.url_scheme is always http")),
    s!("accesslog", arg "access_logfile", Value, Implemented("")),
    s!("disable_redirect_access_to_syslog", ["--disable-redirect-access-to-syslog"], Flag, Ignored(NO_SYSLOG)),
    s!("access_log_format", arg "access_logformat", Value, Implemented("every Gunicorn atom")),
    s!("errorlog", arg "error_logfile", Value, Implemented("")),
    s!("loglevel", arg "log_level", Value, Implemented("case-insensitive; an unknown level is info, as in Gunicorn (with a WARNING)")),
    s!("capture_output", ["--capture-output"], Flag, Ignored("there is no application output to capture")),
    s!("logger_class", ["--logger-class"], Value, Ignored("it names a Python class; heavy-api's logger is built in (statsd is enabled by --statsd-host, as in Gunicorn)")),
    s!("logconfig", ["--log-config"], Value, Ignored(LOG_CONFIG)),
    s!("logconfig_dict", [], FileOnly, Ignored(LOG_CONFIG)),
    s!("logconfig_json", ["--log-config-json"], Value, Ignored(LOG_CONFIG)),
    s!("syslog_addr", ["--log-syslog-to"], Value, Ignored(NO_SYSLOG)),
    s!("syslog", ["--log-syslog"], Flag, Ignored(NO_SYSLOG)),
    s!("syslog_prefix", ["--log-syslog-prefix"], Value, Ignored(NO_SYSLOG)),
    s!("syslog_facility", ["--log-syslog-facility"], Value, Ignored(NO_SYSLOG)),
    s!("enable_stdio_inheritance", ["-R", "--enable-stdio-inheritance"], Flag, Ignored("heavy-api's standard streams are unbuffered lines already")),
    s!("statsd_host", arg "statsd_host", Value, Implemented("HOST:PORT (port 8125 if omitted) or unix:PATH; Gunicorn's metric names and wire format")),
    s!("dogstatsd_tags", arg "dogstatsd_tags", Value, Implemented("")),
    s!("statsd_prefix", arg "statsd_prefix", Value, Implemented("")),
    s!("enable_backlog_metric", ["--enable-backlog-metric"], Flag, Ignored("the listen backlog is not measured; /metrics has the request queue instead")),
    s!("proc_name", arg "proc_name", Value, Implemented("process titles `heavy-api: master [NAME]` / `heavy-api: worker [NAME]`")),
    s!("default_proc_name", [], FileOnly, Ignored("the default process name is heavy-api")),
    s!("pythonpath", ["--pythonpath"], Value, Ignored(NO_PYTHON)),
    s!("paste", ["--paste", "--paster"], Value, Ignored(NO_PYTHON)),
    s!("on_starting", [], FileOnly, Ignored(HOOK)),
    s!("on_reload", [], FileOnly, Ignored(HOOK)),
    s!("when_ready", [], FileOnly, Ignored(HOOK)),
    s!("pre_fork", [], FileOnly, Ignored(HOOK)),
    s!("post_fork", [], FileOnly, Ignored(HOOK)),
    s!("post_worker_init", [], FileOnly, Ignored(HOOK)),
    s!("worker_int", [], FileOnly, Ignored(HOOK)),
    s!("worker_abort", [], FileOnly, Ignored(HOOK)),
    s!("pre_exec", [], FileOnly, Ignored(HOOK)),
    s!("pre_request", [], FileOnly, Ignored(HOOK)),
    s!("post_request", [], FileOnly, Ignored(HOOK)),
    s!("child_exit", [], FileOnly, Ignored(HOOK)),
    s!("worker_exit", [], FileOnly, Ignored(HOOK)),
    s!("nworkers_changed", [], FileOnly, Ignored(HOOK)),
    s!("on_exit", [], FileOnly, Ignored(HOOK)),
    s!("ssl_context", [], FileOnly, Ignored(NO_TLS)),
    s!("proxy_protocol", ["--proxy-protocol"], OptionalValue, Ignored("PROXY protocol headers are not parsed; put heavy-api behind a proxy that sends plain HTTP")),
    s!("proxy_allow_ips", ["--proxy-allow-from"], Value, Ignored("PROXY protocol headers are not parsed")),
    s!("protocol", ["--protocol"], Value, Ignored("heavy-api speaks HTTP only (no uwsgi)")),
    s!("uwsgi_allow_ips", ["--uwsgi-allow-from"], Value, Ignored("heavy-api speaks HTTP only (no uwsgi)")),
    s!("keyfile", ["--keyfile"], Value, Ignored(NO_TLS)),
    s!("certfile", ["--certfile"], Value, Ignored(NO_TLS)),
    s!("ssl_version", ["--ssl-version"], Value, Ignored(NO_TLS)),
    s!("cert_reqs", ["--cert-reqs"], Value, Ignored(NO_TLS)),
    s!("ca_certs", ["--ca-certs"], Value, Ignored(NO_TLS)),
    s!("suppress_ragged_eofs", ["--suppress-ragged-eofs"], Flag, Ignored(NO_TLS)),
    s!("do_handshake_on_connect", ["--do-handshake-on-connect"], Flag, Ignored(NO_TLS)),
    s!("ciphers", ["--ciphers"], Value, Ignored(NO_TLS)),
    s!("http_protocols", ["--http-protocols"], Value, Ignored(NO_HTTP2)),
    s!("http2_cleartext", ["--http2-cleartext"], Value, Ignored(NO_HTTP2)),
    s!("http2_max_concurrent_streams", ["--http2-max-concurrent-streams"], Value, Ignored(NO_HTTP2)),
    s!("http2_initial_window_size", ["--http2-initial-window-size"], Value, Ignored(NO_HTTP2)),
    s!("http2_max_frame_size", ["--http2-max-frame-size"], Value, Ignored(NO_HTTP2)),
    s!("http2_max_header_list_size", ["--http2-max-header-list-size"], Value, Ignored(NO_HTTP2)),
    s!("raw_paste_global_conf", ["--paste-global"], Value, Ignored(NO_PYTHON)),
    s!("permit_obsolete_folding", ["--permit-obsolete-folding"], Flag, Ignored(PARSER)),
    s!("strip_header_spaces", ["--strip-header-spaces"], Flag, Ignored(PARSER)),
    s!("permit_unconventional_http_method", ["--permit-unconventional-http-method"], Flag, Ignored(PARSER)),
    s!("permit_unconventional_http_version", ["--permit-unconventional-http-version"], Flag, Ignored(PARSER)),
    s!("casefold_http_method", ["--casefold-http-method"], Flag, Ignored(PARSER)),
    s!("forwarder_headers", ["--forwarder-headers"], Value, Ignored("no request header is mapped into the request environment beyond HTTP_*")),
    s!("header_map", ["--header-map"], Value, Ignored(PARSER)),
    s!("asgi_loop", ["--asgi-loop"], Value, Ignored(NO_ASGI)),
    s!("asgi_lifespan", ["--asgi-lifespan"], Value, Ignored(NO_ASGI)),
    s!("asgi_disconnect_grace_period", ["--asgi-disconnect-grace-period"], Value, Ignored(NO_ASGI)),
    s!("http_parser", ["--http-parser"], Value, Ignored(PARSER)),
    s!("root_path", ["--root-path"], Value, Ignored("the API is served at the root; SCRIPT_NAME is always empty")),
    s!("dirty_apps", ["--dirty-app"], Value, Ignored(NO_DIRTY)),
    s!("dirty_workers", ["--dirty-workers"], Value, Ignored(NO_DIRTY)),
    s!("dirty_timeout", ["--dirty-timeout"], Value, Ignored(NO_DIRTY)),
    s!("dirty_threads", ["--dirty-threads"], Value, Ignored(NO_DIRTY)),
    s!("dirty_graceful_timeout", ["--dirty-graceful-timeout"], Value, Ignored(NO_DIRTY)),
    s!("on_dirty_starting", [], FileOnly, Ignored(HOOK)),
    s!("dirty_post_fork", [], FileOnly, Ignored(HOOK)),
    s!("dirty_worker_init", [], FileOnly, Ignored(HOOK)),
    s!("dirty_worker_exit", [], FileOnly, Ignored(HOOK)),
    s!("control_socket", ["--control-socket"], Value, Ignored(NO_CONTROL)),
    s!("control_socket_mode", ["--control-socket-mode"], Value, Ignored(NO_CONTROL)),
    s!("control_socket_disable", ["--no-control-socket"], Flag, Ignored(NO_CONTROL)),
];

/// The setting named `name` (its config-file name).
pub fn by_name(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

/// A setting's command-line spellings (`-b`, `--bind`): its clap argument's short flag, long
/// flag and aliases when heavy-api implements it, else the ones listed here.
pub fn flags(setting: &Setting) -> Vec<String> {
    static FLAGS: std::sync::OnceLock<std::collections::HashMap<String, Vec<String>>> =
        std::sync::OnceLock::new();
    let Some(id) = setting.arg else {
        return setting.cli.iter().map(|f| f.to_string()).collect();
    };
    let table = FLAGS.get_or_init(|| {
        use clap::CommandFactory;
        crate::config::Cli::command()
            .get_arguments()
            .map(|a| {
                let mut spelled: Vec<String> =
                    a.get_short().map(|c| format!("-{c}")).into_iter().collect();
                spelled.extend(a.get_long().map(|l| format!("--{l}")));
                spelled.extend(
                    a.get_all_aliases()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|l| format!("--{l}")),
                );
                (a.get_id().to_string(), spelled)
            })
            .collect()
    });
    table.get(id).cloned().unwrap_or_default()
}

/// The setting a command-line spelling belongs to (`--keep-alive`, `-D`).
pub fn by_flag(flag: &str) -> Option<&'static Setting> {
    SETTINGS
        .iter()
        .find(|s| s.cli.contains(&flag) || (s.arg.is_some() && flags(s).iter().any(|f| f == flag)))
}

/// The one WARNING line for an ignored setting.
pub fn ignored_warning(setting: &Setting, spelled: &str) -> Option<String> {
    match setting.support {
        Support::Ignored(why) => Some(format!("{spelled} has no effect in heavy-api: {why}.")),
        _ => None,
    }
}

/// The table of `docs/GUNICORN_SETTINGS.md`, one row per setting.
pub fn markdown_table() -> String {
    let mut out =
        String::from("| Setting | Command line | Behaviour | Notes |\n|---|---|---|---|\n");
    for s in SETTINGS {
        let spelled = flags(s);
        let cli = if spelled.is_empty() {
            "(config file only)".to_string()
        } else {
            spelled
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (kind, text) = match s.support {
            Implemented(t) => ("implemented", t),
            Ignored(t) => ("accepted, no effect (WARNING)", t),
            Guarded(t) => ("accepted or refused", t),
        };
        out.push_str(&format!("| `{}` | {cli} | {kind} | {text} |\n", s.name));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "docs/GUNICORN_SETTINGS.md";
    const BEGIN: &str = "<!-- settings table: rendered from src/settings.rs -->\n";
    const END: &str = "<!-- end of settings table -->";

    /// The table in the docs is the one the code has. `HEAVY_API_UPDATE_DOCS=1 cargo test
    /// settings` rewrites it.
    #[test]
    fn the_docs_table_is_the_codes() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DOC);
        let text = std::fs::read_to_string(&path).expect("docs/GUNICORN_SETTINGS.md");
        let start = text.find(BEGIN).expect("begin marker") + BEGIN.len();
        let end = text.find(END).expect("end marker");
        let table = markdown_table();
        if std::env::var_os("HEAVY_API_UPDATE_DOCS").is_some() {
            let updated = format!("{}{table}{}", &text[..start], &text[end..]);
            std::fs::write(&path, updated).unwrap();
            return;
        }
        assert_eq!(
            &text[start..end],
            table,
            "{DOC} differs from src/settings.rs"
        );
    }

    #[test]
    fn names_and_flags_are_unique_and_well_formed() {
        let mut names = std::collections::HashSet::new();
        let mut flags = std::collections::HashSet::new();
        for s in SETTINGS {
            assert!(names.insert(s.name), "{} twice", s.name);
            let spelled = super::flags(s);
            for f in &spelled {
                assert!(flags.insert(f.clone()), "{f} twice");
                assert!(
                    f.starts_with("--") || (f.len() == 2 && f.starts_with('-')),
                    "{f}"
                );
            }
            assert_eq!(spelled.is_empty(), s.takes == Takes::FileOnly, "{}", s.name);
        }
        // Gunicorn 21.2 has 90 settings; 26.1 has all of these.
        assert_eq!(SETTINGS.len(), 119, "Gunicorn 26.1 has 119 settings");
    }

    /// Every setting heavy-api parses itself names an argument of ours, and spells no flag by
    /// hand (so each flag is declared once, in `config::ServeArgs`).
    #[test]
    fn implemented_settings_name_our_arguments() {
        use clap::CommandFactory;
        let cmd = crate::config::Cli::command();
        for s in SETTINGS.iter().filter(|s| !matches!(s.support, Ignored(_))) {
            if s.name == "config" {
                continue; // -c is read before the command line is parsed
            }
            if s.takes == Takes::FileOnly {
                continue;
            }
            let id = s
                .arg
                .unwrap_or_else(|| panic!("{} is implemented but names no argument", s.name));
            assert!(s.cli.is_empty(), "{} spells its flags twice", s.name);
            assert!(
                cmd.get_arguments().any(|a| a.get_id() == id),
                "{} names {id}, which is not an argument",
                s.name
            );
        }
    }
}
