//! Issue #15: real Gunicorn command lines, `GUNICORN_CMD_ARGS` and config files start the real
//! binary; what applies is applied, the rest is warned about; statsd packets, process titles
//! and errors as a Gunicorn user expects them.

mod common;
use std::io::Write;

use common::*;
use heavy_api::settings::{Support, Takes, SETTINGS};
use std::process::Command;
use std::time::Duration;

const SECS: Duration = Duration::from_secs(30);
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gunicorn");

fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("GUNICORN_CMD_ARGS")
        .env_remove("HEAVY_API_CMD_ARGS")
        .env_remove("WEB_CONCURRENCY")
        .env_remove("PORT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run heavy-api");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `name = value` from `--print-config`.
fn setting(printed: &str, name: &str) -> String {
    printed
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(" = ")?;
            (n.trim_end() == name).then(|| v.to_string())
        })
        .unwrap_or_else(|| panic!("no {name} in {printed}"))
}

/// The original project's command line, verbatim but for the port.
#[test]
fn the_original_command_line_starts_and_warns_about_the_app_module() {
    let server = Server::start(&[
        "loadtest_project.wsgi:application",
        "--workers",
        "4",
        "--threads",
        "2",
        "--timeout",
        "120",
    ]);
    server.wait_workers(4, SECS);
    // Waited for, not read at once: the test's reader thread may not have the lines yet.
    server.wait_for_log(
        "[WARNING] Ignoring the application \"loadtest_project.wsgi:application\": heavy-api \
         serves its own application.",
        SECS,
    );
    server.wait_for_log("[INFO] Using worker: gthread", SECS);
    assert_eq!(get(server.port, "/heavy/health/").status, 200);
}

/// Every Gunicorn setting heavy-api ignores, all at once in `GUNICORN_CMD_ARGS`: the server
/// still starts (an ECS task must not restart in a loop), with one WARNING per setting.
#[test]
fn every_ignored_setting_in_gunicorn_cmd_args_is_one_warning_not_an_exit() {
    let mut args = Vec::new();
    let mut expected = Vec::new();
    for s in SETTINGS {
        let (Support::Ignored(_), Some(flag)) = (s.support, s.cli.last()) else {
            continue;
        };
        match s.takes {
            Takes::Value => args.push(format!("{flag}=x")),
            _ => args.push(flag.to_string()),
        }
        expected.push(flag.to_string());
    }
    let cmd_args = args.join(" ");
    let (code, _, err) = run(
        &["--check-config", "myproject.wsgi"],
        &[("GUNICORN_CMD_ARGS", &cmd_args)],
    );
    assert_eq!(code, Some(0), "{err}");
    for flag in &expected {
        let lines = err
            .lines()
            .filter(|l| l.contains("[WARNING]") && l.contains(&format!("] {flag} ")))
            .count();
        assert_eq!(lines, 1, "{flag}: {err}");
    }
    assert!(
        err.contains("Ignoring the application \"myproject.wsgi\""),
        "{err}"
    );
}

/// ECS-style: the whole configuration in `GUNICORN_CMD_ARGS`, the app on the command line.
#[test]
fn an_ecs_style_environment_configures_the_server() {
    let dir = temp_dir("ecs");
    let mut cmd = Command::new(BIN);
    cmd.arg("--io-file")
        .arg(dir.path().join("data.bin"))
        .arg("loadtest_project.wsgi:application");
    let env = [(
        "GUNICORN_CMD_ARGS",
        "--bind=127.0.0.1:0 --workers=2 --threads=2 --worker-class=gthread \
         --worker-tmp-dir=/dev/shm --access-logfile=- --error-logfile=- --log-level=INFO \
         --keep-alive=75 --forwarded-allow-ips=* --preload --capture-output --name=loadtest",
    )];
    let server = Server::spawn(cmd, &env, dir);
    server.wait_workers(2, SECS);
    let resp = get(server.port, "/heavy/health/?via=alb");
    assert_eq!(resp.status, 200);
    let line = server.wait_for_log("\"GET /heavy/health/?via=alb HTTP/1.1\" 200", SECS);
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    // HEAD: the body the answer would have had, as Gunicorn 21.2 logs it. (Health bodies vary
    // in length with the timestamp's digits: compare with this answer's own Content-Length.)
    let mut s = connect(server.port);
    s.write_all(b"HEAD /heavy/health/?head=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let head = read_response(&mut std::io::BufReader::new(s), true).unwrap();
    let length = head.header("Content-Length").unwrap().to_string();
    let line = server.wait_for_log("\"HEAD /heavy/health/?head=1 HTTP/1.1\" 200", SECS);
    assert!(
        line.contains(&format!(" 200 {length} ")),
        "{length}: {line}"
    );
    let log = server.log_text();
    for warned in ["--worker-tmp-dir /dev/shm", "--preload", "--capture-output"] {
        assert!(
            log.contains(&format!("[WARNING] {warned} has no effect")),
            "{log}"
        );
    }
    assert!(
        log.contains("[WARNING] --forwarded-allow-ips * has no effect"),
        "{log}"
    );
    // The process titles, as Gunicorn's setproctitle sets them.
    let cmdline = |pid: i32| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .trim_end_matches('\0')
                    .to_string()
            })
            .unwrap_or_default()
    };
    let comm = |pid: i32| std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert_eq!(cmdline(server.pid()), "heavy-api: master [loadtest]");
    assert_eq!(comm(server.pid()).trim_end(), "heavy-api: mast");
    for pid in server.wait_workers(2, SECS) {
        // A worker takes its title before it logs that it boots.
        server.wait_for_log(&format!("Booting worker with pid: {pid}"), SECS);
        assert_eq!(
            cmdline(pid),
            "heavy-api: worker [loadtest]",
            "{pid}: {}",
            server.log_text()
        );
        assert_eq!(comm(pid).trim_end(), "heavy-api: work");
    }
}

/// A Django project's gunicorn.conf.py, found as Gunicorn finds it (`./gunicorn.conf.py`),
/// with Gunicorn's precedence: the command line over `GUNICORN_CMD_ARGS` over the file over
/// the defaults; the lines outside the subset are WARNINGs naming them.
#[test]
fn a_django_config_file_is_read_with_gunicorns_precedence() {
    let dir = temp_dir("conf");
    std::fs::copy(
        format!("{FIXTURES}/django_gthread.conf.py"),
        dir.path().join("gunicorn.conf.py"),
    )
    .unwrap();
    let print = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(dir.path())
            .arg("--print-config")
            .args(args)
            .env_remove("GUNICORN_CMD_ARGS")
            .env_remove("WEB_CONCURRENCY")
            .env_remove("PORT");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let cpus = heavy_api::platform::usable_cpus().count;
    let p = print(&[], &[("WEB_CONCURRENCY", "9"), ("PORT", "7000")]);
    assert_eq!(
        setting(&p, "workers"),
        (cpus * 2 + 1).to_string(),
        "the file beats $WEB_CONCURRENCY"
    );
    assert_eq!(
        setting(&p, "bind"),
        "['0.0.0.0:8000']",
        "the file beats $PORT"
    );
    assert_eq!(setting(&p, "keepalive"), "5");
    assert_eq!(setting(&p, "max_requests"), "1000");
    assert_eq!(setting(&p, "proc_name"), "loadtest");
    assert_eq!(setting(&p, "accesslog"), "-");
    assert_eq!(setting(&p, "config"), "./gunicorn.conf.py");
    let env = [(
        "GUNICORN_CMD_ARGS",
        "--threads 3 --workers 3 -b 127.0.0.1:9",
    )];
    let p = print(&[], &env);
    assert_eq!(
        setting(&p, "threads"),
        "3",
        "the environment beats the file"
    );
    assert_eq!(
        setting(&p, "bind"),
        "['127.0.0.1:9']",
        "its binds replace the file's"
    );
    let p = print(&["-w", "1", "--keep-alive", "7"], &env);
    assert_eq!(
        (
            setting(&p, "workers"),
            setting(&p, "threads"),
            setting(&p, "keepalive")
        ),
        ("1".into(), "3".into(), "7".into()),
        "the command line beats both"
    );
    let p = print(&[], &[("GUNICORN_WORKERS", "2"), ("LOG_LEVEL", "debug")]);
    assert_eq!(setting(&p, "workers"), "2");
    assert_eq!(setting(&p, "loglevel"), "debug");

    // And served: the file's access-log format, its warnings with their lines.
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir.path()).args(["--io-file", "data.bin"]);
    let env = [("GUNICORN_BIND", "127.0.0.1:0"), ("GUNICORN_WORKERS", "1")];
    let server = Server::spawn(cmd, &env, dir);
    get(server.port, "/heavy/health/");
    let line = server.wait_for_log("\"GET /heavy/health/ HTTP/1.1\" 200", SECS);
    let micros = line.rsplit(' ').next().unwrap();
    assert!(micros.parse::<u64>().is_ok(), "%(D)s at the end: {line}");
    let log = server.log_text();
    for expected in [
        "./gunicorn.conf.py:5: wsgi_app has no effect",
        "./gunicorn.conf.py:20: worker_tmp_dir has no effect",
        "./gunicorn.conf.py:32: forwarded_allow_ips has no effect",
        "./gunicorn.conf.py:33: secure_scheme_headers has no effect",
        "./gunicorn.conf.py:38: preload_app has no effect",
        "./gunicorn.conf.py:41: the on_starting hook has no effect",
        "./gunicorn.conf.py:45: the post_fork hook has no effect",
    ] {
        assert!(log.contains(expected), "{expected}: {log}");
    }
}

/// Heroku style: everything from the environment, `-k sync` with one thread.
#[test]
fn a_heroku_style_config_file_with_sync_workers() {
    let conf = format!("{FIXTURES}/heroku_style.conf.py");
    let (code, out, err) = run(
        &["--print-config", "-c", &conf, "app:app"],
        &[("PORT", "5123"), ("WEB_CONCURRENCY", "3")],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(setting(&out, "bind"), "['0.0.0.0:5123']");
    assert_eq!(setting(&out, "workers"), "3");
    assert_eq!(setting(&out, "worker_class"), "sync");
    assert_eq!(
        setting(&out, "keepalive"),
        "0",
        "sync never keeps connections alive"
    );
    assert_eq!(setting(&out, "timeout"), "30");
    assert_eq!(setting(&out, "statsd_host"), "None");
    assert_eq!(
        setting(&out, "loglevel"),
        "info",
        "log_level is not a setting"
    );
    assert!(
        err.contains("heroku_style.conf.py:16: outside the supported subset"),
        "{err}"
    );
    assert!(
        err.contains("heroku_style.conf.py:14: capture_output has no effect"),
        "{err}"
    );
    // With more threads, sync is gthread, as in Gunicorn.
    let (_, out, _) = run(&["--print-config", "-c", &conf, "--threads", "4"], &[]);
    assert_eq!(setting(&out, "worker_class"), "gthread");
}

#[test]
fn errors_name_where_they_came_from() {
    let (code, _, err) = run(&[], &[("GUNICORN_CMD_ARGS", "--workers 2 --nope")]);
    assert_eq!(code, Some(1));
    assert!(
        err.starts_with("Error: GUNICORN_CMD_ARGS: unexpected argument '--nope' found"),
        "{err}"
    );
    assert!(err.contains("For more information, try '--help'."), "{err}");
    let (code, _, err) = run(&["--timeout", "-1"], &[]);
    assert_eq!(code, Some(1));
    assert!(
        err.lines().next().unwrap().contains("'--timeout <INT>'"),
        "{err}"
    );
    let (code, _, err) = run(&["--bind-addr", "x"], &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("tip:") && err.contains("Usage:"), "{err}");

    let dir = temp_dir("check");
    let io = dir.path().join("data.bin");
    let io = io.to_str().unwrap();
    let (code, _, err) = run(
        &[
            "--check-config",
            "--io-file",
            io,
            "--error-logfile",
            "/nonexistent/dir/e.log",
        ],
        &[],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("cannot use --error-logfile /nonexistent/dir/e.log"),
        "{err}"
    );
    let (code, _, err) = run(
        &[
            "--check-config",
            "--io-file",
            io,
            "--bind",
            "no-such-host.invalid:8000",
        ],
        &[],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("cannot resolve the bind host \"no-such-host.invalid\""),
        "{err}"
    );
    let log = dir.path().join("a.log");
    let (code, _, err) = run(
        &[
            "--check-config",
            "--io-file",
            io,
            "--access-logfile",
            log.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(!log.exists(), "checking creates nothing");
    let (code, _, err) = run(&["--check-config", "--io-file", io, "--user", "4242"], &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("--user 4242: heavy-api does not switch users"),
        "{err}"
    );
    let me = unsafe { libc::geteuid() }.to_string();
    let (code, _, err) = run(&["--check-config", "--io-file", io, "-u", &me], &[]);
    assert_eq!(code, Some(0), "{err}");
}

/// Gunicorn's statsd datagrams, received on a UDP socket.
#[test]
fn statsd_datagrams_as_gunicorn_sends_them() {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let host = sock.local_addr().unwrap().to_string();
    let server = Server::start(&[
        "--workers",
        "1",
        "--statsd-host",
        &host,
        "--statsd-prefix",
        "loadtest",
        "--dogstatsd-tags",
        "env:test,service:heavy",
        "--preload",
    ]);
    assert_eq!(get(server.port, "/heavy/health/").status, 200);
    assert_eq!(get(server.port, "/nope").status, 404);
    let tags = "|#env:test,service:heavy";
    let wanted = [
        format!("loadtest.gunicorn.workers:1|g{tags}"),
        format!("loadtest.gunicorn.log.warning:1|c|@1.0{tags}"),
        format!("loadtest.gunicorn.requests:1|c|@1.0{tags}"),
        format!("loadtest.gunicorn.request.status.200:1|c|@1.0{tags}"),
        format!("loadtest.gunicorn.request.status.404:1|c|@1.0{tags}"),
    ];
    let mut got: Vec<String> = Vec::new();
    let deadline = std::time::Instant::now() + SECS;
    while !wanted.iter().all(|w| got.contains(w)) {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {SECS:?} waiting for {wanted:?}; got {got:?}"
        );
        let mut buf = [0u8; 1500];
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    let durations: Vec<&String> = got
        .iter()
        .filter(|p| p.starts_with("loadtest.gunicorn.request.duration:"))
        .collect();
    assert!(durations.len() >= 2, "{got:?}");
    for d in durations {
        let value = d
            .strip_prefix("loadtest.gunicorn.request.duration:")
            .and_then(|r| r.strip_suffix(&format!("|ms{tags}")))
            .unwrap_or_else(|| panic!("{d}"));
        assert!(value.contains('.') && value.parse::<f64>().is_ok(), "{d}");
    }
}

/// A config file's warnings name the setting and line, never the line's text (it may hold a
/// secret), and a file that is not a config (`/proc/self/environ`: NUL bytes) is refused
/// quoting nothing of it.
#[test]
fn config_file_messages_never_quote_the_file() {
    let dir = temp_dir("conf-secrets");
    let conf = dir.path().join("gunicorn.conf.py");
    std::fs::write(
        &conf,
        "workers = 2\ndb_url = {'password': 's3cret-value'}\nthreads = 's3cret-value' * 2\n\
         print('s3cret-value')\n",
    )
    .unwrap();
    let conf = conf.to_str().unwrap();
    let (code, out, err) = run(&["--print-config", "-c", conf], &[]);
    assert_eq!(code, Some(0), "{err}");
    let all = format!("{out}{err}");
    assert!(!all.contains("s3cret"), "{all}");
    assert!(all.contains(&format!("{conf}:2: db_url: ")), "{all}");
    assert!(
        all.contains(&format!("{conf}:3: cannot evaluate threads")),
        "{all}"
    );
    assert!(
        all.contains(&format!("{conf}:4: outside the supported subset")),
        "{all}"
    );

    let (code, out, err) = run(
        &["--print-config", "-c", "/proc/self/environ"],
        &[("SOME_SECRET", "s3cret-value")],
    );
    assert_eq!(code, Some(1), "{err}");
    let all = format!("{out}{err}");
    assert!(!all.contains("s3cret") && !all.contains("PATH="), "{all}");
    assert!(
        all.contains(
            "config file /proc/self/environ: not a config file (it contains NUL bytes); not read"
        ),
        "{all}"
    );
}

/// Issue 22, defect 7: a `--statsd-host` that does not resolve neither stops a start nor fails
/// `--check-config` (Gunicorn starts and its statsd stays quiet); a WARNING names the host and
/// says statsd stays off until a reload.
#[test]
fn an_unresolvable_statsd_host_starts_with_a_warning() {
    let host = "no-such-collector.invalid";
    let server = Server::start(&["--workers", "1", "--statsd-host", host]);
    let warning = server.wait_for_log("statsd is off", SECS);
    assert!(warning.contains("[WARNING]"), "{warning}");
    assert!(warning.contains(&format!("{host}:8125")), "{warning}");
    assert!(warning.contains("until a reload"), "{warning}");
    assert_eq!(get(server.port, "/heavy/health/").status, 200);

    let dir = temp_dir("statsd-check");
    let io = dir.path().join("data.bin");
    let (code, _, err) = run(
        &[
            "--check-config",
            "--io-file",
            io.to_str().unwrap(),
            "--statsd-host",
            host,
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains(host) && err.contains("statsd is off"), "{err}");
}
