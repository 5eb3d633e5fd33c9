use clap::error::ErrorKind;
use heavy_api::config::BindSpec;
use heavy_api::config::{first_line, Config, Invocation, PrintFormat};
use heavy_api::{healthcheck, log, master, proctitle, statsd};

fn main() {
    // Read once, before any process title overwrites the argument area.
    let argv: Vec<String> = proctitle::original_args()
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let invocation = match Config::from_env_and_args(&argv) {
        Ok(invocation) => invocation,
        Err(err)
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            ) =>
        {
            let _ = err.print();
            std::process::exit(0);
        }
        Err(err) => {
            // clap's whole message (tips, usage, the --help hint), Gunicorn's `Error:` first.
            let text = err.render().to_string();
            let text = text.strip_prefix("error: ").unwrap_or(&text);
            eprint!("Error: {}", text);
            if !text.ends_with('\n') {
                eprintln!();
            }
            let _ = first_line;
            std::process::exit(1);
        }
    };
    let config = match invocation {
        Invocation::Healthcheck { url, timeout } => {
            std::process::exit(healthcheck::run(&url, timeout))
        }
        Invocation::Serve(config) => *config,
    };
    match config.print_config {
        Some(PrintFormat::Text) => {
            for warning in &config.warnings {
                log::warning(warning);
            }
            print!("{}", config.printable());
            std::process::exit(0);
        }
        // The warnings are in the JSON; stdout is the one object, nothing else.
        Some(PrintFormat::Json) => {
            println!("{:#}", config.printable_json());
            std::process::exit(0);
        }
        None => {}
    }
    if config.check_config {
        for warning in &config.warnings {
            log::warning(warning);
        }
        match check(&config) {
            Ok(()) => std::process::exit(0),
            Err(err) => {
                eprintln!("Error: {err}");
                std::process::exit(1);
            }
        }
    }
    if let Some(mask) = config.umask {
        // SAFETY: umask only sets the process's file mode creation mask.
        unsafe {
            libc::umask(mask as libc::mode_t);
        }
    }
    if let Err(err) = log::init(
        config.log_level,
        &config.error_logfile,
        config.access_logfile.as_deref(),
        &config.access_logformat,
    ) {
        eprintln!("Error: cannot open log file: {err}");
        std::process::exit(1);
    }
    if let Err(err) = statsd::init(
        config.statsd.as_ref(),
        &config.statsd_prefix,
        &config.dogstatsd_tags,
    ) {
        // Gunicorn starts without statsd when its host cannot be reached; so does this.
        log::warning(&err.to_string());
    }
    proctitle::set(&proctitle::master(&config.proc_name));
    std::process::exit(master::run(config, argv));
}

/// `--check-config`: what the master prepares at start must be possible — the io file, the log
/// files (their directories exist and they can be opened for appending), the bind hosts (they
/// resolve). Checking creates nothing (a statsd socket is opened and dropped: no file).
fn check(config: &heavy_api::config::Config) -> Result<(), String> {
    let data = heavy_api::io_store::DataFile::new(&config.io_file);
    data.check()
        .map_err(|err| format!("cannot use io file {}: {err}", config.io_file.display()))?;
    let logs = [
        ("--error-logfile", Some(config.error_logfile.as_str())),
        ("--access-logfile", config.access_logfile.as_deref()),
    ];
    for (flag, path) in logs {
        let Some(path) = path.filter(|p| *p != "-") else {
            continue;
        };
        let path = std::path::Path::new(path);
        let usable = if path.exists() {
            std::fs::OpenOptions::new()
                .append(true)
                .open(path)
                .map(|_| ())
        } else {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => std::path::Path::new("."),
            };
            match std::fs::metadata(dir) {
                Ok(m) if m.is_dir() => nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK)
                    .map_err(std::io::Error::from),
                Ok(_) => Err(std::io::Error::other("its directory is not a directory")),
                Err(e) => Err(e),
            }
        };
        usable.map_err(|e| format!("cannot use {flag} {}: {e}", path.display()))?;
    }
    let binds = config.binds.iter().chain(config.metrics_bind.as_ref());
    for bind in binds {
        if let BindSpec::Tcp { host, port } = bind {
            use std::net::ToSocketAddrs;
            let resolved = (host.as_str(), *port).to_socket_addrs();
            if !resolved.is_ok_and(|mut a| a.next().is_some()) {
                return Err(format!("cannot resolve the bind host {host:?} ({bind})"));
            }
        }
    }
    // A --statsd-host that does not resolve does not stop a start (statsd stays off, with a
    // WARNING): said here the same way, and no error.
    if let Some(target) = &config.statsd {
        if let Err(err) = statsd::init(Some(target), "", "") {
            log::warning(&err.to_string());
        }
    }
    Ok(())
}
