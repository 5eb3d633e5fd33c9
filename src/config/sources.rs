//! Where values come from, and which one wins.
//!
//! Three sources, each parsed by the same clap command ([`super::command`]) into its own
//! [`ArgMatches`]: the real command line, the extra arguments in `HEAVY_API_CMD_ARGS` (or
//! `GUNICORN_CMD_ARGS`), and the config file's assignments (as `--flag=value`). Which one a
//! setting's value comes from is decided in one place, [`Layers::winner`]: the highest source
//! that gave it, else its default — Gunicorn's precedence. Defaults that read the environment
//! (the table's `env`: `WEB_CONCURRENCY`, `PORT`) are defaults: any source beats them, the
//! config file too. `validate` reads them rather than clap's `env` attribute: they are not
//! values as written (`PORT` becomes `0.0.0.0:$PORT`), and resolution reads the environment it
//! is handed (tests hand it one), where clap would read the process's.

use super::table::{self, Support, Takes};
use super::{first_line, BindSpec, EXTRA_ARGS_ENV, GUNICORN_EXTRA_ARGS_ENV};
use crate::gunicorn_conf::{self, Value};
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{ArgMatches, Command};

/// A WARNING for the boot log: the setting (or text) it is deduplicated by, and its text.
pub(super) type Warning = (String, String);

/// The parsed sources, highest precedence first.
pub(super) struct Layers {
    /// The real command line; its matches also hold every default.
    pub cli: ArgMatches,
    /// The environment's extra arguments.
    pub env: ArgMatches,
    /// The config file's assignments.
    pub file: ArgMatches,
}

impl Layers {
    /// The precedence rule, the only one: a setting's value comes from the first source that
    /// gave it (command line, then the environment's extra arguments, then the config file),
    /// else it is the default. A repeatable setting (`--bind`) takes all of its values from
    /// that one source, so the command line's binds replace the file's instead of adding to
    /// them, as in Gunicorn.
    pub fn winner(&self, id: &str) -> &ArgMatches {
        [&self.cli, &self.env, &self.file]
            .into_iter()
            .find(|m| given(m, id))
            .unwrap_or(&self.cli)
    }

    /// The winning value of a setting whose type is `T` (see [`table::Kind`]).
    pub fn one<T: Clone + Send + Sync + 'static>(&self, id: &str) -> Option<T> {
        self.winner(id).get_one::<T>(id).cloned()
    }

    /// The winning values of a repeatable setting.
    pub fn all(&self, id: &str) -> Vec<String> {
        self.winner(id)
            .get_many::<String>(id)
            .map(|v| v.cloned().collect())
            .unwrap_or_default()
    }

    /// A switch: on when the winning source turned it on.
    pub fn switch(&self, id: &str) -> bool {
        self.winner(id).get_flag(id)
    }
}

/// Whether `m`'s source gave `id` itself (not its default).
fn given(m: &ArgMatches, id: &str) -> bool {
    m.value_source(id) == Some(ValueSource::CommandLine)
}

/// The environment's extra arguments, split as a shell would, and the variable they came from
/// (`HEAVY_API_CMD_ARGS` preferred when both are set).
pub(super) fn extra_arguments(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(&'static str, Vec<String>), clap::Error> {
    let (var, extra) = match env(EXTRA_ARGS_ENV) {
        Some(v) => (EXTRA_ARGS_ENV, v),
        None => (
            GUNICORN_EXTRA_ARGS_ENV,
            env(GUNICORN_EXTRA_ARGS_ENV).unwrap_or_default(),
        ),
    };
    let args = shlex::split(&extra).ok_or_else(|| {
        clap::Error::raw(
            ErrorKind::InvalidValue,
            format!("{var}: cannot split the arguments: unbalanced quotes\n"),
        )
    })?;
    Ok((var, args))
}

/// An error in the environment's extra arguments, saying where it came from
/// (`GUNICORN_CMD_ARGS: unexpected argument '--nope' found`), clap's tips and usage kept.
pub(super) fn from_variable(var: &str, err: clap::Error) -> clap::Error {
    let text = err.render().to_string();
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    clap::Error::raw(err.kind(), format!("{var}: {text}"))
}

/// One WARNING per ignored Gunicorn setting a source gave (naming it as it was written), and
/// one for its `APP_MODULE` argument. `var` is the environment variable the source is, or "".
pub(super) fn ignored_warnings(m: &ArgMatches, var: &str) -> Vec<Warning> {
    // In the order they were written.
    let mut out: Vec<(usize, Warning)> = Vec::new();
    for setting in table::SETTINGS.iter().filter(|s| !s.is_applied()) {
        for flag in setting.cli.iter().filter(|f| given(m, f)) {
            let value = match setting.takes {
                Takes::Flag => None,
                _ => m.get_many::<String>(flag).and_then(|mut v| v.next()),
            };
            let spelled = match value.filter(|v| !v.is_empty()) {
                Some(v) => format!("{flag} {v}"),
                None => flag.to_string(),
            };
            if let Some(warning) = table::ignored_warning(setting, &spelled) {
                let at = m.index_of(flag).unwrap_or(usize::MAX);
                out.push((at, (setting.name.to_string(), warning)));
            }
        }
    }
    out.sort_by_key(|(at, _)| *at);
    let mut out: Vec<Warning> = out.into_iter().map(|(_, w)| w).collect();
    if let Some(app) = m.get_one::<String>(super::command::APP_MODULE) {
        let from = if var.is_empty() {
            String::new()
        } else {
            format!(" (in ${var})")
        };
        out.push((
            "wsgi_app".into(),
            format!(
                "Ignoring the application {app:?}{from}: heavy-api serves its own application."
            ),
        ));
    }
    out
}

/// Reads the config file at `path` into its layer: each applied setting's last assignment as
/// `--flag=value`, parsed by `cmd` once. A value clap or its own check refuses becomes a
/// WARNING naming the file, line and setting (never the value: it may be a secret) and is
/// left out; the server still starts. A file that cannot be read or is over a bound is an
/// error.
pub(super) fn config_file(
    cmd: &Command,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(ArgMatches, Vec<Warning>), String> {
    // One byte more than the bound is read, never the whole of a huge file.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| {
            use std::io::Read;
            f.take(gunicorn_conf::MAX_FILE_BYTES as u64 + 1)
                .read_to_end(&mut bytes)
        })
        .map_err(|e| format!("cannot read config file {path:?}: {e}"))?;
    let source = gunicorn_conf::text(path, bytes)?;
    let cpus = crate::platform::usable_cpus().count;
    let file = gunicorn_conf::parse(path, &source, env, cpus)?;
    let mut warnings: Vec<Warning> = file.warnings.into_iter().map(|w| (w.clone(), w)).collect();
    // (setting, its line, its tokens), in the file's order.
    let mut groups: Vec<(&'static table::Setting, usize, Vec<String>)> = Vec::new();
    let last = |name: &str| file.assignments.iter().rposition(|a| a.name == name);
    for (index, a) in file.assignments.iter().enumerate() {
        // A name that is not a setting is a helper variable, as Gunicorn ignores it;
        // heavy-api's own settings are not Gunicorn's, so a file does not set them either.
        let Some(setting) = table::by_name(&a.name)
            .filter(|s| s.is_applied() && s.support != Support::HeavyApi && s.name != "config")
        else {
            continue;
        };
        if last(&a.name) != Some(index) || a.value == Value::None {
            continue;
        }
        let Some(flag) = setting.long() else {
            continue;
        };
        let tokens: Vec<String> = match (&setting.takes, &a.value) {
            (Takes::Flag, v) if v.truthy() => vec![flag.to_string()],
            (Takes::Flag, _) => Vec::new(),
            (_, Value::List(items)) if setting.name == "bind" => {
                items.iter().map(|i| format!("{flag}={i}")).collect()
            }
            (_, Value::Float(x)) if x.fract() == 0.0 => vec![format!("{flag}={}", *x as i64)],
            (_, v) => vec![format!("{flag}={v}")],
        };
        let checked = tokens.iter().find_map(|t| {
            let value = t.split_once('=')?.1;
            match setting.name {
                "bind" => BindSpec::parse(value).err(),
                "statsd_host" => crate::statsd::parse_target(value).err(),
                _ => None,
            }
        });
        match checked {
            Some(why) => warnings.push(refused(path, a.line, setting.name, why, &tokens)),
            None if !tokens.is_empty() => groups.push((setting, a.line, tokens)),
            None => {}
        }
    }
    // One parse; a value clap refuses names its flag: that setting is warned about and left
    // out, and the rest parsed again.
    loop {
        let argv0 = cmd.get_name().to_string();
        let tokens = groups.iter().flat_map(|(_, _, t)| t.iter().cloned());
        let err = match cmd
            .clone()
            .try_get_matches_from(std::iter::once(argv0).chain(tokens))
        {
            Ok(matches) => return Ok((matches, warnings)),
            Err(err) => err,
        };
        let culprit = match err.get(ContextKind::InvalidArg) {
            // `--threads <INT>`, `--print-config[=<FORMAT>]`: the flag, then its value's name.
            Some(ContextValue::String(arg)) => {
                let flag = arg.split([' ', '[', '=']).next().unwrap_or_default();
                groups.iter().position(|(s, _, _)| s.cli.contains(&flag))
            }
            _ => None,
        };
        let Some(at) = culprit else {
            return Err(format!("config file {path}: {}", first_line(&err)));
        };
        let (setting, line, tokens) = groups.remove(at);
        warnings.push(refused(path, line, setting.name, first_line(&err), &tokens));
    }
}

/// The WARNING for a config-file value that is refused: the setting's name, never its value.
fn refused(path: &str, line: usize, name: &str, why: String, tokens: &[String]) -> Warning {
    let mut why = why;
    for value in tokens
        .iter()
        .filter_map(|t| t.split_once('=').map(|(_, v)| v))
        .filter(|v| !v.is_empty())
    {
        why = why
            .replace(&format!("'{value}'"), "'…'")
            .replace(&format!("{value:?}"), "\"…\"");
    }
    let w = format!("{path}:{line}: {name}: {why}; ignored");
    (w.clone(), w)
}
