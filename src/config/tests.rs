//! The settings' resolution, end to end: precedence, defaults, errors, `--print-config`.

use super::*;
use clap::CommandFactory;

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

/// Issue 22, item 13: the statsd prefix goes into every datagram line as the tags do, so a
/// control character in it is refused too, naming the setting, from any source.
#[test]
fn a_control_character_in_the_statsd_prefix_is_refused() {
    for (args, vars) in [
        (&["--statsd-prefix", "app\nforged:1|c"][..], &[][..]),
        (&[], &[("GUNICORN_CMD_ARGS", "--statsd-prefix='a\tb'")][..]),
    ] {
        let err = match serve_with(args, vars) {
            Err(e) => first_line(&e),
            Ok(_) => panic!("{args:?} {vars:?} should fail"),
        };
        assert!(err.contains("--statsd-prefix"), "{err}");
        assert!(!err.contains("forged"), "the value is not echoed: {err}");
    }
    assert_eq!(
        serve(&["--statsd-prefix", "app.web"]).statsd_prefix,
        "app.web"
    );
}

/// The one precedence rule over all three sources: each setting from the highest source that
/// gave it, a repeatable one (`bind`) wholly from that source, a switch turned on by the file
/// staying on; the file's refused values are WARNINGs naming line and setting, the rest apply.
#[test]
fn each_setting_comes_from_the_highest_source_that_gave_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("g.conf.py");
    std::fs::write(
        &file,
        "bind = ['127.0.0.1:5', '127.0.0.1:6']\nthreads = 4\nworkers = 'many'\n\
         timeout = -1\nkeepalive = 9\ncheck_config = True\nmax_requests = 10\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let env = (
        "GUNICORN_CMD_ARGS",
        "--threads 3 --keep-alive 8 -b 127.0.0.1:7",
    );
    let c = serve_with(&["-c", file, "--keep-alive", "7"], &[env]).unwrap();
    assert_eq!(c.threads, 3, "the environment beats the file");
    assert_eq!(
        c.keep_alive,
        Some(Duration::from_secs(7)),
        "the command line beats both"
    );
    assert_eq!(c.max_requests, 10, "the file beats the default");
    assert!(c.check_config, "a switch the file turned on");
    assert_eq!(
        c.binds.len(),
        1,
        "the environment's binds replace the file's"
    );
    let c = serve_with(
        &["-c", file, "-b", "unix:/tmp/a", "-b", "unix:/tmp/b"],
        &[env],
    )
    .unwrap();
    assert_eq!(
        c.binds.len(),
        2,
        "the command line's binds replace the others'"
    );
    let c = serve_with(&["-c", file], &[]).unwrap();
    assert_eq!(c.binds.len(), 2, "the file's binds");
    assert_eq!((c.workers, c.timeout), (4, Some(Duration::from_secs(120))));
    for (line, name) in [(3, "workers"), (4, "timeout")] {
        let prefix = format!("{file}:{line}: {name}: ");
        assert!(
            c.warnings
                .iter()
                .any(|w| w.starts_with(&prefix) && w.ends_with("; ignored")),
            "{prefix}: {:?}",
            c.warnings
        );
    }
}
