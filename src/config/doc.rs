//! The settings table of `docs/GUNICORN_SETTINGS.md`, rendered from [`super::table`]; a unit
//! test fails when the checked-in docs differ, so they cannot drift
//! (`HEAVY_API_UPDATE_DOCS=1 cargo test --lib config::doc` rewrites them).

use super::table::{Initial, Support, SETTINGS};

/// One row per setting: its spellings, default, what heavy-api does with it, its help line.
pub fn markdown_table() -> String {
    let cell = |text: &str| text.replace('|', "\\|");
    let mut out = String::from(
        "| Setting | Command line | Default | Behaviour | Meaning |\n|---|---|---|---|---|\n",
    );
    for s in SETTINGS.iter().filter(|s| !s.hidden) {
        let cli = if s.cli.is_empty() {
            "(config file only)".to_string()
        } else {
            s.cli
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let default = match s.initial {
            Initial::Is("") => "empty".to_string(),
            Initial::Is(v) => format!("`{}`", cell(v)),
            Initial::Derived(how) => cell(how),
            Initial::Unset => String::new(),
        };
        let behaviour = match s.support {
            Support::Implemented("") => "implemented".to_string(),
            Support::Implemented(t) => format!("implemented: {t}"),
            Support::Ignored(t) => format!("accepted, no effect (WARNING): {t}"),
            Support::Guarded(t) => format!("accepted or refused: {t}"),
            Support::HeavyApi => "heavy-api only (command line and environment)".to_string(),
        };
        let meaning = if s.is_applied() { s.help } else { "" };
        out.push_str(&format!(
            "| `{}` | {cli} | {default} | {} | {} |\n",
            s.name,
            cell(&behaviour),
            cell(meaning)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "docs/GUNICORN_SETTINGS.md";
    const BEGIN: &str = "<!-- settings table: rendered from src/config/table.rs -->\n";
    const END: &str = "<!-- end of settings table -->";

    /// The table in the docs is the one the code has.
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
            "{DOC} differs from src/config/table.rs: HEAVY_API_UPDATE_DOCS=1 cargo test --lib \
             config::doc rewrites it"
        );
    }
}
