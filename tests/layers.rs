//! The layers `src/lib.rs` describes, held to the code: every `crate::MODULE` path in a module's
//! files names a module listed before it (or in its own group), and the master uses neither HTTP
//! nor the application.

use std::collections::BTreeSet;
use std::path::Path;

/// Innermost first, as in `src/lib.rs`; modules in one entry form one group.
const LAYERS: &[&[&str]] = &[
    &["response"],
    &["io_store"],
    &["shared"],
    &["signals"],
    &["proctitle"],
    &["statsd"],
    &["client"],
    &["log"],
    &["platform"],
    &["app"],
    &["http"],
    &["config", "settings", "gunicorn_conf"],
    &["metrics"],
    &["healthcheck"],
    &["worker"],
    &["master"],
];

fn sources(module: &str) -> Vec<std::path::PathBuf> {
    let file = Path::new("src").join(format!("{module}.rs"));
    let dir = Path::new("src").join(module);
    let mut out = Vec::new();
    if file.exists() {
        out.push(file);
    }
    if dir.is_dir() {
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push(path);
                }
            }
        }
    }
    assert!(!out.is_empty(), "no source for module {module}");
    out
}

/// The modules a file's code (its tests left out) names with `crate::NAME` or
/// `crate::{NAME, ...}`.
fn used(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut names = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name = ident(item);
                if !name.is_empty() {
                    names.insert(name);
                }
            }
        } else {
            names.insert(ident(rest));
        }
    }
    names
}

#[test]
fn every_module_uses_only_the_layers_beneath_it() {
    let layer_of = |name: &str| LAYERS.iter().position(|group| group.contains(&name));
    let mut wrong = Vec::new();
    for (index, group) in LAYERS.iter().enumerate() {
        for module in *group {
            for path in sources(module) {
                let text = std::fs::read_to_string(&path).unwrap();
                for name in used(&text) {
                    match layer_of(&name) {
                        Some(layer) if layer <= index => {}
                        Some(_) => wrong.push(format!("{} uses crate::{name}", path.display())),
                        None => wrong.push(format!(
                            "{} uses crate::{name}, which src/lib.rs does not place",
                            path.display()
                        )),
                    }
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

/// Beyond the order: the master knows neither HTTP nor the application, and HTTP (bytes in,
/// bytes out) not the application.
#[test]
fn the_master_and_http_keep_out_of_what_is_not_theirs() {
    for (module, forbidden) in [("master", &["http", "app"][..]), ("http", &["app"][..])] {
        for path in sources(module) {
            let names = used(&std::fs::read_to_string(&path).unwrap());
            for name in forbidden {
                assert!(
                    !names.contains(*name),
                    "{} uses crate::{name}",
                    path.display()
                );
            }
        }
    }
}
