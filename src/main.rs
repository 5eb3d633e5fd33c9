use clap::error::ErrorKind;
use heavy_api::config::{first_line, Config, Invocation};
use heavy_api::{app, healthcheck, log, master};

fn main() {
    let argv: Vec<String> = std::env::args_os()
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
            eprintln!("Error: {}", first_line(&err));
            std::process::exit(1);
        }
    };
    let config = match invocation {
        Invocation::Healthcheck { url, timeout } => {
            std::process::exit(healthcheck::run(&url, timeout))
        }
        Invocation::Serve(config) => *config,
    };
    if config.print_config {
        print!("{}", config.printable());
        std::process::exit(0);
    }
    if config.check_config {
        // What the master prepares at start must be possible; checking creates nothing.
        let data = app::io_store::DataFile::new(&config.io_file);
        if let Err(err) = data.check() {
            eprintln!(
                "Error: cannot use io file {}: {err}",
                config.io_file.display()
            );
            std::process::exit(1);
        }
        std::process::exit(0);
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
    std::process::exit(master::run(config, argv));
}
