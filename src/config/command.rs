//! The clap command, built from the settings table: every applied setting a typed flag, every
//! ignored Gunicorn spelling a hidden one (so clap, not a tokenizer of ours, reads them), the
//! `APP_MODULE` argument, and the `healthcheck` subcommand.

use super::table::{Initial, Kind, Setting, Takes, SETTINGS};
use super::table::{HEAVY, LIMITS, LOGGING, PROCESS, SOCKET, WORKERS};
use clap::builder::{PossibleValuesParser, ValueParser};
use clap::{Arg, ArgAction, Command};

/// Most workers `--workers` accepts.
pub const MAX_WORKERS: u32 = 1024;
/// Workers per usable CPU with `--workers auto`: the original ran 4 workers on 2 vCPUs.
pub const WORKERS_PER_CPU: usize = 2;

/// The id of the `APP_MODULE` argument (Gunicorn's positional application).
pub(super) const APP_MODULE: &str = "app_module";

/// `--print-config[=FORMAT]`: Gunicorn's aligned `name = value` text, or JSON for tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PrintFormat {
    Text,
    Json,
}

/// `--workers`: a count, or derived from the CPUs this process may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    Count(u32),
    Auto,
}

pub(super) fn parse_workers(text: &str) -> Result<Workers, String> {
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

/// The command line's parser: `Cli::command()` (clap's [`clap::CommandFactory`]).
pub struct Cli;

impl clap::CommandFactory for Cli {
    fn command() -> Command {
        command()
    }

    fn command_for_update() -> Command {
        command()
    }
}

/// The whole command: the table's settings, `APP_MODULE` and `healthcheck`.
pub fn command() -> Command {
    let healthcheck = Command::new("healthcheck")
        .about(
            "Probe a running server's /heavy/health/ and exit 0 if it answers 200, else 1 (for \
             container health checks: the image has no curl)",
        )
        .arg(Arg::new("url").value_name("URL").help(
            "Server to probe: a base URL, or the full health URL. [default: \
             http://127.0.0.1:$PORT, else http://127.0.0.1:8000]",
        ))
        .arg(
            Arg::new("timeout")
                .long("timeout")
                .value_name("TIMEOUT")
                .default_value("3")
                .value_parser(clap::value_parser!(f64))
                .help("Seconds to wait for the answer"),
        );
    let mut cmd = Command::new("heavy-api")
        .version(env!("CARGO_PKG_VERSION"))
        .about(
            "A deliberately CPU- and I/O-heavy HTTP API for load-testing platforms, served by a \
             Gunicorn-style prefork server (a master and N workers with M handler threads each).",
        )
        .after_help(
            "Endpoints: GET /heavy/health/ and GET /heavy/cpu-io-no-db/?prime_limit=&hash_rounds=&io_kb=\n\
             Extra arguments are also read from $HEAVY_API_CMD_ARGS (or $GUNICORN_CMD_ARGS); \
             the real command line wins.\n\
             Signals to the master: TERM graceful stop, INT/QUIT quick stop, HUP reload, \
             TTIN/TTOU one worker more/less, USR1 reopen log files.",
        )
        .args_override_self(true)
        .allow_negative_numbers(true)
        .args_conflicts_with_subcommands(true)
        .max_term_width(100)
        .subcommand(healthcheck)
        .arg(
            Arg::new(APP_MODULE)
                .value_name("APP_MODULE")
                .hide(true)
                .help("Gunicorn's application argument: accepted and ignored, with a WARNING"),
        );
    // Grouped by section, in this order, for `--help`.
    let sections = [SOCKET, WORKERS, LIMITS, HEAVY, LOGGING, PROCESS, ""];
    let by_section = sections
        .iter()
        .flat_map(|h| SETTINGS.iter().filter(move |s| s.heading == *h));
    for setting in by_section {
        if setting.is_applied() {
            cmd = cmd.arg(applied(setting));
        } else {
            for flag in setting.cli {
                cmd = cmd.arg(ignored(setting, flag));
            }
        }
    }
    cmd
}

/// Gives `arg` the spelling `flag` (`-b` or `--bind`): the first long one is its name, the
/// others aliases.
fn spelled(arg: Arg, flag: &'static str, first_long: bool) -> Arg {
    match flag.strip_prefix("--") {
        Some(long) if first_long => arg.long(long),
        Some(long) => arg.alias(long),
        None => arg.short(flag.chars().nth(1).unwrap_or('?')),
    }
}

/// A setting heavy-api applies: typed, ranged, with its default and help.
fn applied(s: &'static Setting) -> Arg {
    let mut arg = Arg::new(s.name)
        .help_heading(s.heading)
        .hide(s.hidden)
        .action(ArgAction::Set);
    let first_long = s.long();
    for flag in s.cli {
        arg = spelled(arg, flag, Some(*flag) == first_long);
    }
    if !s.value_name.is_empty() {
        arg = arg.value_name(s.value_name);
    }
    arg = match s.kind {
        Kind::Switch => arg.action(ArgAction::SetTrue),
        Kind::Text => arg,
        Kind::List => arg.action(ArgAction::Append),
        Kind::Int(min, max) => arg.value_parser(clap::value_parser!(i64).range(min..=max)),
        Kind::Workers => arg.value_parser(parse_workers),
        Kind::Umask => arg.value_parser(parse_umask),
        Kind::PrintFormat => arg
            .num_args(0..=1)
            .require_equals(true)
            .default_missing_value("text")
            .value_parser(clap::value_parser!(PrintFormat)),
        Kind::OneOf(values) => arg.value_parser(PossibleValuesParser::new(values)),
    };
    match s.initial {
        Initial::Is(value) => arg.default_value(value).help(s.help),
        Initial::Derived(how) => arg.help(format!("{} [default: {how}]", s.help)),
        Initial::Unset => arg.help(s.help),
    }
}

/// One spelling of a Gunicorn setting heavy-api ignores: hidden, its value kept only to name it
/// in the WARNING. Each spelling is its own argument (its id is the spelling) so the WARNING
/// says what was written.
fn ignored(s: &'static Setting, flag: &'static str) -> Arg {
    let arg = spelled(Arg::new(flag), flag, true).hide(true);
    match s.takes {
        Takes::Flag => arg.action(ArgAction::SetTrue),
        // As Gunicorn's argparse: the next argument is the value, whatever it looks like.
        Takes::Value => arg
            .action(ArgAction::Append)
            .allow_hyphen_values(true)
            .value_parser(ValueParser::string()),
        Takes::OptionalValue => arg
            .action(ArgAction::Append)
            .num_args(0..=1)
            .default_missing_value("")
            .value_parser(ValueParser::string()),
        Takes::FileOnly => unreachable!("a setting with a spelling is not file-only"),
    }
}

/// Whether the spelling `flag` of an ignored setting is an argument of ours (for the table's
/// tests).
#[cfg(test)]
pub(super) fn has_flag(cmd: &Command, flag: &str) -> bool {
    cmd.get_arguments().any(|a| {
        flag.strip_prefix("--").is_some_and(|l| {
            a.get_long() == Some(l) || a.get_all_aliases().is_some_and(|al| al.contains(&l))
        }) || (flag.len() == 2 && a.get_short() == flag.chars().nth(1))
    })
}

#[cfg(test)]
mod tests {
    use super::super::table::Support;
    use super::*;

    /// Every setting with a spelling is an argument, applied ones visible unless hidden.
    #[test]
    fn every_spelling_is_an_argument() {
        let cmd = command();
        for s in SETTINGS {
            for f in s.cli {
                assert!(has_flag(&cmd, f), "{} ({f}) is not a flag", s.name);
            }
            if matches!(s.support, Support::Implemented(_)) {
                let arg = cmd.get_arguments().find(|a| a.get_id() == s.name).unwrap();
                assert_eq!(arg.is_hide_set(), s.hidden, "{}", s.name);
            }
        }
        cmd.debug_assert();
    }
}
