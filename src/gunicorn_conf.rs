//! Gunicorn's config file (`-c FILE`, default `./gunicorn.conf.py`), read without Python.
//!
//! Real config files are mostly plain assignments, and that subset is evaluated here:
//! `name = value` where a value is a number, string (f-strings included), boolean, `None`, a
//! list or tuple of those, arithmetic on them, a name assigned earlier, `multiprocessing.
//! cpu_count()` / `os.cpu_count()` (the CPUs this process may use, cgroup quota included),
//! `os.environ.get("X", default)`, `os.getenv(...)`, `os.environ["X"]`, `int()`, `str()`,
//! `float()`, `min()`, `max()`, and `a or b`. Imports and docstrings are fine. Anything else —
//! hooks (`def`), `if` blocks, other calls — is a WARNING naming its line and setting (never
//! quoting the line: it may hold a secret), and never stops the server from starting.
//!
//! A file is bounded as Python bounds it, or tighter: at most [`MAX_FILE_BYTES`], text without
//! NUL bytes, expressions nested at most [`MAX_DEPTH`] deep, each evaluated value at most
//! [`MAX_VALUE_BYTES`] and all of them together at most [`MAX_TOTAL_BYTES`]. A file over a bound
//! is an error naming the file (and line) — the server does not start, a reload keeps the
//! running configuration — as a `SyntaxError` or `RecursionError` is in Gunicorn. A leading
//! UTF-8 BOM and `\r\n` or `\r` line endings are read as Python reads them.

use std::collections::HashMap;
use std::fmt;

/// The largest config file read, in bytes.
pub const MAX_FILE_BYTES: usize = 1 << 20;
/// The deepest nesting of an expression: brackets, calls, subscripts, unary `-`/`+`/`not`.
pub const MAX_DEPTH: usize = 100;
/// The largest evaluated value (a string's bytes; a list's items, 8 bytes each at least).
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// The most that all of a file's evaluated values may hold together.
pub const MAX_TOTAL_BYTES: usize = 4 << 20;

/// A Python value of the subset.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    None,
    List(Vec<Value>),
}

impl fmt::Display for Value {
    /// As Python's `str()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(n) => write!(f, "{n}"),
            Value::Float(x) if x.fract() == 0.0 && x.abs() < 1e16 => write!(f, "{x:.1}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => f.write_str(s),
            Value::Bool(true) => f.write_str("True"),
            Value::Bool(false) => f.write_str("False"),
            Value::None => f.write_str("None"),
            Value::List(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    match v {
                        Value::Str(s) => write!(f, "'{s}'")?,
                        other => write!(f, "{other}")?,
                    }
                }
                f.write_str("]")
            }
        }
    }
}

impl Value {
    /// What the value holds, in bytes (what the size bounds count).
    pub fn size(&self) -> usize {
        match self {
            Value::Str(s) => s.len(),
            Value::List(items) => items.iter().map(|v| v.size().max(8)).sum(),
            _ => 8,
        }
    }

    /// Its type, as a message names it (never the value: it may be a secret).
    fn kind(&self) -> &'static str {
        match self {
            Value::Int(_) => "an int",
            Value::Float(_) => "a float",
            Value::Str(_) => "a string",
            Value::Bool(_) => "a bool",
            Value::None => "None",
            Value::List(_) => "a list",
        }
    }

    /// Python's truth value.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Int(n) => *n != 0,
            Value::Float(x) => *x != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Bool(b) => *b,
            Value::None => false,
            Value::List(l) => !l.is_empty(),
        }
    }
}

/// One module-level assignment that evaluated.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub line: usize,
    pub name: String,
    pub value: Value,
}

/// What a config file says: its assignments in order, and a WARNING for everything else.
#[derive(Debug, Default)]
pub struct ConfFile {
    pub assignments: Vec<Assignment>,
    pub warnings: Vec<String>,
}

/// Checks a config file's bytes (named `label`) and returns its text: at most
/// [`MAX_FILE_BYTES`], UTF-8 without NUL bytes. The error quotes nothing of the file.
pub fn text(label: &str, bytes: Vec<u8>) -> Result<String, String> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(format!(
            "config file {label}: larger than {} KiB; not read",
            MAX_FILE_BYTES >> 10
        ));
    }
    if bytes.contains(&0) {
        return Err(format!(
            "config file {label}: not a config file (it contains NUL bytes); not read"
        ));
    }
    String::from_utf8(bytes)
        .map_err(|_| format!("config file {label}: not a config file (not UTF-8 text); not read"))
}

/// Reads `source` (named `label` in warnings). `env` reads environment variables; `cpus` is what
/// `cpu_count()` returns. A file over a bound (see the module's doc) is an error naming the file
/// and line.
pub fn parse(
    label: &str,
    source: &str,
    env: &dyn Fn(&str) -> Option<String>,
    cpus: usize,
) -> Result<ConfFile, String> {
    if source.len() > MAX_FILE_BYTES {
        return Err(format!(
            "config file {label}: larger than {} KiB; not read",
            MAX_FILE_BYTES >> 10
        ));
    }
    if source.contains('\0') {
        return Err(format!(
            "config file {label}: not a config file (it contains NUL bytes); not read"
        ));
    }
    // As Python reads source: a leading BOM is dropped, \r\n and \r end lines.
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let source = source.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = ConfFile::default();
    let mut vars: HashMap<String, Value> = HashMap::new();
    let mut total = 0usize;
    let (statements, broken) = logical_lines(&source);
    let mut skip_indented = false;
    for st in statements {
        if st.indented {
            if !skip_indented {
                out.warnings.push(format!(
                    "{label}:{}: unexpected indentation; ignored",
                    st.line
                ));
            }
            continue;
        }
        skip_indented = false;
        let warn = |why: String| format!("{label}:{}: {why}", st.line);
        // What the line assigns, to name it in a warning instead of quoting the line.
        let target = st
            .text
            .split_once('=')
            .map(|(lhs, _)| lhs.split(':').next().unwrap_or_default().trim())
            .filter(|n| {
                !n.is_empty() && n.len() <= 64 && n.chars().all(|c| c.is_alphanumeric() || c == '_')
            })
            .map(|n| format!("{n}: "))
            .unwrap_or_default();
        // A setting heavy-api ignores is named as such, whatever its value is written in
        // (dictionaries, functions).
        if let Some((lhs, _)) = st.text.split_once('=') {
            let name = lhs.split(':').next().unwrap_or_default().trim();
            let ignored = crate::settings::by_name(name)
                .and_then(|s| crate::settings::ignored_warning(s, name));
            if let Some(why) = ignored {
                out.warnings.push(warn(why));
                if st.text.trim_end().ends_with(':') {
                    skip_indented = true;
                }
                continue;
            }
        }
        let tokens = match tokenize(&st.text) {
            Ok(t) => t,
            Err(why) => {
                out.warnings.push(warn(format!("{target}{why}; ignored")));
                continue;
            }
        };
        let first = tokens.first();
        match first {
            Some(Tok::Name(kw)) if kw == "import" || kw == "from" => continue,
            Some(Tok::Str(..)) if tokens.len() == 1 || all_strings(&tokens) => continue, // docstring
            Some(Tok::Name(kw)) if kw == "def" => {
                skip_indented = true;
                let name = match tokens.get(1) {
                    Some(Tok::Name(n)) => n.clone(),
                    _ => "?".into(),
                };
                let why = match crate::settings::by_name(&name) {
                    Some(s) => crate::settings::ignored_warning(s, &format!("the {name} hook"))
                        .unwrap_or_default(),
                    None => {
                        format!("def {name}(): functions are outside the supported subset; ignored")
                    }
                };
                out.warnings.push(warn(why));
                continue;
            }
            _ => {}
        }
        if st.text.trim_end().ends_with(':') {
            skip_indented = true;
        }
        // NAME = expr (a type annotation is allowed: NAME: type = expr)
        let assign = match (
            &tokens.first(),
            tokens.iter().position(|t| *t == Tok::Op("=")),
        ) {
            (Some(Tok::Name(name)), Some(eq))
                if eq == 1 || tokens.get(1) == Some(&Tok::Op(":")) =>
            {
                Some((name.clone(), &tokens[eq + 1..]))
            }
            _ => None,
        };
        let Some((name, expr)) = assign else {
            out.warnings.push(warn(format!(
                "{target}outside the supported subset (plain assignments); ignored"
            )));
            continue;
        };
        if let Some(setting) = crate::settings::by_name(&name) {
            if let Some(why) = crate::settings::ignored_warning(setting, &name) {
                out.warnings.push(warn(why));
                continue;
            }
        }
        let mut p = Eval {
            toks: expr,
            pos: 0,
            vars: &vars,
            env,
            cpus,
            depth: 0,
            fatal: None,
        };
        let result = p.expr().and_then(|v| p.end().map(|()| v));
        if let Some(why) = p.fatal {
            return Err(format!("config file {label}:{}: {name}: {why}", st.line));
        }
        match result {
            Ok(value) => {
                total += value.size();
                if total > MAX_TOTAL_BYTES {
                    return Err(format!(
                        "config file {label}:{}: {name}: the file's values hold more than {} \
                         MiB together",
                        st.line,
                        MAX_TOTAL_BYTES >> 20
                    ));
                }
                vars.insert(name.clone(), value.clone());
                out.assignments.push(Assignment {
                    line: st.line,
                    name,
                    value,
                });
            }
            Err(why) => out
                .warnings
                .push(warn(format!("cannot evaluate {name} ({why}); ignored"))),
        }
    }
    if let Some((line, why)) = broken {
        out.warnings.push(format!(
            "{label}:{line}: {why}; the rest of the file is ignored"
        ));
    }
    Ok(out)
}

fn all_strings(tokens: &[Tok]) -> bool {
    tokens.iter().all(|t| matches!(t, Tok::Str(..)))
}

struct Statement {
    line: usize,
    indented: bool,
    text: String,
}

/// Splits the source into logical lines: comments dropped, lines joined inside brackets,
/// triple-quoted strings and after a backslash.
fn logical_lines(source: &str) -> (Vec<Statement>, Option<(usize, String)>) {
    let mut out = Vec::new();
    let chars: Vec<char> = source.chars().collect();
    let (mut i, mut line) = (0usize, 1usize);
    let mut current = String::new();
    let mut start_line = 1;
    let mut depth = 0i32;
    let mut at_start = true;
    let mut indented = false;
    while i < chars.len() {
        let c = chars[i];
        if at_start {
            if c == ' ' || c == '\t' {
                indented = true;
                i += 1;
                continue;
            }
            if c == '\n' || c == '#' || c == '\r' {
                // blank or comment-only line
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                i += 1;
                line += 1;
                indented = false;
                continue;
            }
            at_start = false;
            start_line = line;
        }
        match c {
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '\'' | '"' => {
                let triple = i + 2 < chars.len() && chars[i + 1] == c && chars[i + 2] == c;
                let quote_len = if triple { 3 } else { 1 };
                current.extend(&chars[i..i + quote_len]);
                i += quote_len;
                loop {
                    if i >= chars.len() {
                        return (out, Some((start_line, "unterminated string".into())));
                    }
                    let d = chars[i];
                    if d == '\\' && i + 1 < chars.len() {
                        current.push(d);
                        current.push(chars[i + 1]);
                        if chars[i + 1] == '\n' {
                            line += 1;
                        }
                        i += 2;
                        continue;
                    }
                    if d == '\n' {
                        if !triple {
                            return (out, Some((start_line, "unterminated string".into())));
                        }
                        line += 1;
                    }
                    if d == c
                        && (!triple
                            || (i + 2 < chars.len() && chars[i + 1] == c && chars[i + 2] == c))
                    {
                        current.extend(&chars[i..i + quote_len]);
                        i += quote_len;
                        break;
                    }
                    current.push(d);
                    i += 1;
                }
                continue;
            }
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            '\\' if chars.get(i + 1) == Some(&'\n') => {
                current.push(' ');
                i += 2;
                line += 1;
                continue;
            }
            '\n' => {
                line += 1;
                if depth > 0 {
                    current.push(' ');
                    i += 1;
                    continue;
                }
                out.push(Statement {
                    line: start_line,
                    indented,
                    text: std::mem::take(&mut current),
                });
                at_start = true;
                indented = false;
                i += 1;
                continue;
            }
            _ => {}
        }
        current.push(c);
        i += 1;
    }
    if !current.trim().is_empty() {
        out.push(Statement {
            line: start_line,
            indented,
            text: current,
        });
    }
    (out, None)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Int(i64),
    Float(f64),
    /// A string literal, and whether it is an f-string.
    Str(String, bool),
    Op(&'static str),
}

const OPS: [&str; 16] = [
    "//", "**", "==", "(", ")", "[", "]", ",", ".", "=", "+", "-", "*", "/", "%", ":",
];

fn tokenize(text: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        // string, with an optional prefix
        let prefix_len = chars[i..]
            .iter()
            .take_while(|c| c.is_ascii_alphabetic())
            .count();
        let prefix: String = chars[i..i + prefix_len]
            .iter()
            .collect::<String>()
            .to_ascii_lowercase();
        let is_str_prefix = prefix_len <= 2
            && ["", "r", "f", "u", "b", "rf", "fr", "br", "rb"].contains(&prefix.as_str());
        if is_str_prefix && matches!(chars.get(i + prefix_len), Some('\'' | '"')) {
            let q = chars[i + prefix_len];
            let mut j = i + prefix_len;
            let triple = chars.get(j + 1) == Some(&q) && chars.get(j + 2) == Some(&q);
            let ql = if triple { 3 } else { 1 };
            j += ql;
            let raw = prefix.contains('r');
            let mut s = String::new();
            loop {
                let Some(&d) = chars.get(j) else {
                    return Err("unterminated string".into());
                };
                if d == '\\' && !raw {
                    let e = chars.get(j + 1).copied().unwrap_or('\\');
                    match e {
                        'n' => s.push('\n'),
                        't' => s.push('\t'),
                        'r' => s.push('\r'),
                        '0' => s.push('\0'),
                        '\\' | '\'' | '"' => s.push(e),
                        '\n' => {}
                        other => {
                            s.push('\\');
                            s.push(other);
                        }
                    }
                    j += 2;
                    continue;
                }
                if d == q
                    && (!triple || (chars.get(j + 1) == Some(&q) && chars.get(j + 2) == Some(&q)))
                {
                    j += ql;
                    break;
                }
                s.push(d);
                j += 1;
            }
            out.push(Tok::Str(s, prefix.contains('f')));
            i = j;
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let name: String = chars[i..]
                .iter()
                .take_while(|c| c.is_alphanumeric() || **c == '_')
                .collect();
            i += name.chars().count();
            out.push(Tok::Name(name));
            continue;
        }
        if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let num: String = chars[i..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == '.' || **c == '_')
                .collect();
            i += num.chars().count();
            let clean = num.replace('_', "");
            let lower = clean.to_ascii_lowercase();
            let parsed = if let Some(oct) = lower.strip_prefix("0o") {
                i64::from_str_radix(oct, 8).ok().map(Tok::Int)
            } else if let Some(hex) = lower.strip_prefix("0x") {
                i64::from_str_radix(hex, 16).ok().map(Tok::Int)
            } else if let Ok(n) = clean.parse::<i64>() {
                Some(Tok::Int(n))
            } else {
                clean.parse::<f64>().ok().map(Tok::Float)
            };
            out.push(parsed.ok_or("bad number")?);
            continue;
        }
        let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
        match OPS.iter().find(|op| rest.starts_with(**op)) {
            Some(op) => {
                out.push(Tok::Op(op));
                i += op.len();
            }
            None => return Err(format!("unsupported character U+{:04X}", c as u32)),
        }
    }
    Ok(out)
}

struct Eval<'a> {
    toks: &'a [Tok],
    pos: usize,
    vars: &'a HashMap<String, Value>,
    env: &'a dyn Fn(&str) -> Option<String>,
    cpus: usize,
    /// How deep the expression being evaluated is nested (at most [`MAX_DEPTH`]).
    depth: usize,
    /// A bound the file broke: the whole file is refused, not just this line.
    fatal: Option<String>,
}

type R = Result<Value, String>;

impl Eval<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn eat(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Op(o)) if *o == op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn eat_name(&mut self, kw: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Name(n)) if n == kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, op: &str) -> Result<(), String> {
        if self.eat(op) {
            Ok(())
        } else {
            Err(format!("expected '{op}'"))
        }
    }
    fn end(&self) -> Result<(), String> {
        match self.peek() {
            None => Ok(()),
            Some(t) => Err(format!("unsupported {}", describe(t))),
        }
    }

    /// Runs `f` one level deeper, refusing the file past [`MAX_DEPTH`] (recursion is what
    /// nesting costs here, and the stack is finite).
    fn nested(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        if self.depth >= MAX_DEPTH {
            return Err(self.refuse(format!("expression nested deeper than {MAX_DEPTH} levels")));
        }
        self.depth += 1;
        let result = f(self);
        self.depth -= 1;
        result
    }
    fn refuse(&mut self, why: String) -> String {
        self.fatal.get_or_insert(why).clone()
    }
    /// `v`, unless it is larger than [`MAX_VALUE_BYTES`] (then the file is refused).
    fn bounded(&mut self, v: Value) -> R {
        if v.size() > MAX_VALUE_BYTES {
            return Err(self.refuse(format!("a value larger than {} MiB", MAX_VALUE_BYTES >> 20)));
        }
        Ok(v)
    }

    fn expr(&mut self) -> R {
        self.nested(Self::or)
    }
    fn or(&mut self) -> R {
        let mut left = self.and()?;
        while self.eat_name("or") {
            let right = self.and()?;
            if !left.truthy() {
                left = right;
            }
        }
        Ok(left)
    }
    fn and(&mut self) -> R {
        let mut left = self.not()?;
        while self.eat_name("and") {
            let right = self.not()?;
            if left.truthy() {
                left = right;
            }
        }
        Ok(left)
    }
    fn not(&mut self) -> R {
        if self.eat_name("not") {
            return Ok(Value::Bool(!self.nested(Self::not)?.truthy()));
        }
        self.sum()
    }
    fn sum(&mut self) -> R {
        let mut left = self.term()?;
        loop {
            let op = if self.eat("+") {
                "+"
            } else if self.eat("-") {
                "-"
            } else {
                return Ok(left);
            };
            let right = self.term()?;
            left = arith(op, left, right)?;
            left = self.bounded(left)?;
        }
    }
    fn term(&mut self) -> R {
        let mut left = self.unary()?;
        loop {
            let op = ["*", "//", "/", "%"].into_iter().find(|op| self.eat(op));
            let Some(op) = op else { return Ok(left) };
            let right = self.unary()?;
            left = arith(op, left, right)?;
            left = self.bounded(left)?;
        }
    }
    fn unary(&mut self) -> R {
        if self.eat("-") {
            return match self.nested(Self::unary)? {
                Value::Int(n) => Ok(Value::Int(n.checked_neg().ok_or("overflow")?)),
                Value::Float(x) => Ok(Value::Float(-x)),
                v => Err(format!("cannot negate {}", v.kind())),
            };
        }
        if self.eat("+") {
            return self.nested(Self::unary);
        }
        self.postfix()
    }
    fn args(&mut self) -> Result<Vec<Value>, String> {
        let mut args = Vec::new();
        while !self.eat(")") {
            let arg = self.expr()?;
            self.items_bounded(&args, &arg)?;
            args.push(arg);
            if !self.eat(",") {
                self.expect(")")?;
                break;
            }
        }
        Ok(args)
    }
    /// A dotted name, with the call or subscript that follows it.
    fn postfix(&mut self) -> R {
        let Some(Tok::Name(first)) = self.peek().cloned() else {
            return self.atom();
        };
        if ["True", "False", "None"].contains(&first.as_str()) {
            return self.atom();
        }
        self.pos += 1;
        let mut path = first;
        while self.eat(".") {
            match self.peek().cloned() {
                Some(Tok::Name(n)) => {
                    self.pos += 1;
                    path = format!("{path}.{n}");
                }
                _ => return Err("expected a name after '.'".into()),
            }
        }
        if self.eat("(") {
            let args = self.args()?;
            return self.call(&path, args);
        }
        if self.eat("[") {
            let key = self.expr()?;
            self.expect("]")?;
            return match path.as_str() {
                "os.environ" | "environ" => {
                    let key = key.to_string();
                    let v = (self.env)(&key)
                        .map(Value::Str)
                        .ok_or(format!("${key} is not set"))?;
                    self.bounded(v)
                }
                _ => match (self.vars.get(&path), key) {
                    (Some(Value::List(items)), Value::Int(i)) => {
                        let i = if i < 0 { items.len() as i64 + i } else { i };
                        items
                            .get(i as usize)
                            .cloned()
                            .ok_or("index out of range".into())
                    }
                    _ => Err(format!("unsupported subscript of {path}")),
                },
            };
        }
        self.vars
            .get(&path)
            .cloned()
            .ok_or(format!("{path} is not defined here"))
    }
    fn call(&mut self, func: &str, args: Vec<Value>) -> R {
        let arg = |i: usize| args.get(i).cloned();
        match (func, args.len()) {
            ("multiprocessing.cpu_count" | "os.cpu_count" | "cpu_count", 0) => {
                Ok(Value::Int(self.cpus as i64))
            }
            ("os.environ.get" | "environ.get" | "os.getenv" | "getenv", 1 | 2) => {
                let key = args[0].to_string();
                let v = (self.env)(&key)
                    .map(Value::Str)
                    .unwrap_or(arg(1).unwrap_or(Value::None));
                self.bounded(v)
            }
            ("int", 1) => match &args[0] {
                Value::Int(n) => Ok(Value::Int(*n)),
                Value::Float(x) => Ok(Value::Int(x.trunc() as i64)),
                Value::Bool(b) => Ok(Value::Int(*b as i64)),
                Value::Str(s) => s
                    .trim()
                    .parse::<i64>()
                    .map(Value::Int)
                    .map_err(|_| "int() of a string that is not a number".to_string()),
                v => Err(format!("int() of {}", v.kind())),
            },
            ("float", 1) => match &args[0] {
                Value::Int(n) => Ok(Value::Float(*n as f64)),
                Value::Float(x) => Ok(Value::Float(*x)),
                Value::Str(s) => s
                    .trim()
                    .parse::<f64>()
                    .map(Value::Float)
                    .map_err(|_| "float() of a string that is not a number".to_string()),
                v => Err(format!("float() of {}", v.kind())),
            },
            ("str", 1) => {
                let v = Value::Str(args[0].to_string());
                self.bounded(v)
            }
            ("bool", 1) => Ok(Value::Bool(args[0].truthy())),
            ("min" | "max", n) if n >= 2 => {
                let mut best = args[0].clone();
                for v in &args[1..] {
                    let (a, b) = (number(&best)?, number(v)?);
                    if (func == "max" && b > a) || (func == "min" && b < a) {
                        best = v.clone();
                    }
                }
                Ok(best)
            }
            _ => Err(format!("call to {func}() is outside the supported subset")),
        }
    }
    fn atom(&mut self) -> R {
        let tok = self.peek().cloned().ok_or("expected a value")?;
        self.pos += 1;
        match tok {
            Tok::Int(n) => Ok(Value::Int(n)),
            Tok::Float(x) => Ok(Value::Float(x)),
            Tok::Name(n) if n == "True" => Ok(Value::Bool(true)),
            Tok::Name(n) if n == "False" => Ok(Value::Bool(false)),
            Tok::Name(n) if n == "None" => Ok(Value::None),
            Tok::Str(s, f) => {
                let mut text = if f { self.fstring(&s)? } else { s };
                // adjacent literals concatenate
                while let Some(Tok::Str(more, f)) = self.peek().cloned() {
                    self.pos += 1;
                    text.push_str(&if f { self.fstring(&more)? } else { more });
                    if text.len() > MAX_VALUE_BYTES {
                        break;
                    }
                }
                self.bounded(Value::Str(text))
            }
            Tok::Op("(") => {
                if self.eat(")") {
                    return Ok(Value::List(Vec::new()));
                }
                let first = self.expr()?;
                if self.eat(")") {
                    return Ok(first);
                }
                let mut items = vec![first];
                while self.eat(",") {
                    if self.eat(")") {
                        return Ok(Value::List(items));
                    }
                    let item = self.expr()?;
                    self.items_bounded(&items, &item)?;
                    items.push(item);
                }
                self.expect(")")?;
                Ok(Value::List(items))
            }
            Tok::Op("[") => {
                let mut items = Vec::new();
                while !self.eat("]") {
                    let item = self.expr()?;
                    self.items_bounded(&items, &item)?;
                    items.push(item);
                    if !self.eat(",") {
                        self.expect("]")?;
                        break;
                    }
                }
                Ok(Value::List(items))
            }
            t => Err(format!("unsupported {}", describe(&t))),
        }
    }
    /// Refuses the file when `items` and `next` together would be larger than
    /// [`MAX_VALUE_BYTES`].
    fn items_bounded(&mut self, items: &[Value], next: &Value) -> Result<(), String> {
        let size: usize = items.iter().chain([next]).map(|v| v.size().max(8)).sum();
        if size > MAX_VALUE_BYTES {
            return Err(self.refuse(format!("a value larger than {} MiB", MAX_VALUE_BYTES >> 20)));
        }
        Ok(())
    }
    fn fstring(&mut self, s: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find(['{', '}']) {
            out.push_str(&rest[..i]);
            let c = rest.as_bytes()[i];
            let after = &rest[i + 1..];
            if after.as_bytes().first() == Some(&c) {
                out.push(c as char);
                rest = &after[1..];
                continue;
            }
            if c == b'}' {
                return Err("single '}' in f-string".into());
            }
            let close = after.find('}').ok_or("unterminated f-string field")?;
            let inner = &after[..close];
            if inner.contains(['!', ':']) && !inner.contains(['"', '\'']) {
                return Err("f-string conversions and format specs are outside the subset".into());
            }
            let toks = tokenize(inner)?;
            let mut p = Eval {
                toks: &toks,
                pos: 0,
                vars: self.vars,
                env: self.env,
                cpus: self.cpus,
                depth: self.depth + 1,
                fatal: None,
            };
            let v = p.expr().and_then(|v| p.end().map(|()| v));
            if let Some(why) = p.fatal {
                return Err(self.refuse(why));
            }
            out.push_str(&v?.to_string());
            if out.len() > MAX_VALUE_BYTES {
                return Err(
                    self.refuse(format!("a value larger than {} MiB", MAX_VALUE_BYTES >> 20))
                );
            }
            rest = &after[close + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Name(n) => format!("'{n}'"),
        Tok::Op(o) => format!("'{o}'"),
        Tok::Int(n) => n.to_string(),
        Tok::Float(x) => x.to_string(),
        Tok::Str(..) => "string".into(),
    }
}

fn number(v: &Value) -> Result<f64, String> {
    match v {
        Value::Int(n) => Ok(*n as f64),
        Value::Float(x) => Ok(*x),
        Value::Bool(b) => Ok(*b as i64 as f64),
        other => Err(format!("{} is not a number", other.kind())),
    }
}

fn arith(op: &str, a: Value, b: Value) -> R {
    use Value::*;
    let int = |x: Option<i64>| {
        x.map(Int)
            .ok_or_else(|| "overflow or division by zero".to_string())
    };
    match (op, a, b) {
        ("+", Str(x), Str(y)) => Ok(Str(x + &y)),
        ("+", List(mut x), List(y)) => {
            x.extend(y);
            Ok(List(x))
        }
        ("+", Int(x), Int(y)) => int(x.checked_add(y)),
        ("-", Int(x), Int(y)) => int(x.checked_sub(y)),
        ("*", Int(x), Int(y)) => int(x.checked_mul(y)),
        ("//", Int(x), Int(y)) => int(floor_div(x, y)),
        ("%", Int(x), Int(y)) => int(floor_mod(x, y)),
        (op, a, b) => {
            let (x, y) = (number(&a)?, number(&b)?);
            Ok(Float(match op {
                "+" => x + y,
                "-" => x - y,
                "*" => x * y,
                "/" if y != 0.0 => x / y,
                "//" if y != 0.0 => (x / y).floor(),
                "%" if y != 0.0 => {
                    // Python's: the result takes the divisor's sign.
                    let r = x % y;
                    if r != 0.0 && (r < 0.0) != (y < 0.0) {
                        r + y
                    } else {
                        r
                    }
                }
                _ => return Err("division by zero".into()),
            }))
        }
    }
}

/// Python's `//` on ints: the quotient rounded toward negative infinity.
fn floor_div(x: i64, y: i64) -> Option<i64> {
    let q = x.checked_div(y)?;
    if x % y != 0 && (x < 0) != (y < 0) {
        q.checked_sub(1)
    } else {
        Some(q)
    }
}

/// Python's `%` on ints: the remainder takes the divisor's sign.
fn floor_mod(x: i64, y: i64) -> Option<i64> {
    let r = x.checked_rem(y)?;
    Some(if r != 0 && (r < 0) != (y < 0) {
        r + y
    } else {
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(src: &str, vars: &[(&str, &str)]) -> ConfFile {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse("gunicorn.conf.py", src, &|k| vars.get(k).cloned(), 2).unwrap()
    }

    fn refused(src: &str) -> String {
        parse("gunicorn.conf.py", src, &|_| None, 2).expect_err("the file is refused")
    }

    fn get(c: &ConfFile, name: &str) -> Option<Value> {
        c.assignments
            .iter()
            .rev()
            .find(|a| a.name == name)
            .map(|a| a.value.clone())
    }

    #[test]
    fn literals_lists_and_arithmetic() {
        let c = run(
            "bind = ['0.0.0.0:8000', \"unix:/tmp/x.sock\"]\nworkers = 4\nthreads = (2)\n\
             timeout = 2 * 60\nkeepalive = 75.0\npreload_app = False\naccesslog = '-'\n\
             raw = ('a', 'b',)\nhalf = 7 // 2\n",
            &[],
        );
        assert!(
            c.warnings.iter().all(|w| w.contains("preload_app")),
            "{:?}",
            c.warnings
        );
        assert_eq!(
            get(&c, "bind").unwrap().to_string(),
            "['0.0.0.0:8000', 'unix:/tmp/x.sock']"
        );
        assert_eq!(get(&c, "workers"), Some(Value::Int(4)));
        assert_eq!(get(&c, "threads"), Some(Value::Int(2)));
        assert_eq!(get(&c, "timeout"), Some(Value::Int(120)));
        assert_eq!(get(&c, "keepalive").unwrap().to_string(), "75.0");
        assert_eq!(
            get(&c, "raw"),
            Some(Value::List(vec![
                Value::Str("a".into()),
                Value::Str("b".into())
            ]))
        );
        assert_eq!(get(&c, "half"), Some(Value::Int(3)));
    }

    #[test]
    fn cpu_count_and_environment() {
        let src = r#"
import multiprocessing
import os
from multiprocessing import cpu_count

"""A docstring
over lines."""
workers = multiprocessing.cpu_count() * 2 + 1  # the classic formula
w2 = max(2, cpu_count())
port = os.environ.get("PORT", "8000")
bind = f"0.0.0.0:{port}"
bind2 = "0.0.0.0:" + os.getenv('PORT2', '9000')
loglevel = os.environ.get("LOG_LEVEL") or "info"
timeout = int(os.environ.get('GUNICORN_TIMEOUT', 30))
keepalive = int(os.environ["KEEP"])
threads = int(
    os.environ.get("THREADS",
                   "4")
)
"#;
        let c = run(src, &[("PORT", "8080"), ("KEEP", "5")]);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(get(&c, "workers"), Some(Value::Int(5)));
        assert_eq!(get(&c, "w2"), Some(Value::Int(2)));
        assert_eq!(get(&c, "bind"), Some(Value::Str("0.0.0.0:8080".into())));
        assert_eq!(get(&c, "bind2"), Some(Value::Str("0.0.0.0:9000".into())));
        assert_eq!(get(&c, "loglevel"), Some(Value::Str("info".into())));
        assert_eq!(get(&c, "timeout"), Some(Value::Int(30)));
        assert_eq!(get(&c, "keepalive"), Some(Value::Int(5)));
        assert_eq!(get(&c, "threads"), Some(Value::Int(4)));
        assert_eq!(
            c.assignments
                .iter()
                .find(|a| a.name == "threads")
                .unwrap()
                .line,
            16
        );
    }

    #[test]
    fn everything_else_is_a_warning_naming_its_line() {
        let src = "workers = 2\n\ndef on_starting(server):\n    server.log.info('hi')\n\n\
                   if True:\n    workers = 9\nprint('x')\nsecure_scheme_headers = {'X': 'y'}\n\
                   timeout = os.environ['NOPE']\nthreads = some_function()\nbad = 'open\n\
                   def helper():\n    return 1\n";
        let c = run(src, &[]);
        let w = c.warnings.join("\n");
        assert!(
            w.contains("gunicorn.conf.py:3: the on_starting hook has no effect"),
            "{w}"
        );
        assert!(
            w.contains("gunicorn.conf.py:6: outside the supported subset"),
            "{w}"
        );
        assert!(
            w.contains("gunicorn.conf.py:8: outside the supported subset"),
            "{w}"
        );
        assert!(
            w.contains("gunicorn.conf.py:9: secure_scheme_headers has no effect"),
            "{w}"
        );
        assert!(
            w.contains("gunicorn.conf.py:10: cannot evaluate timeout ($NOPE is not set)"),
            "{w}"
        );
        assert!(
            w.contains("gunicorn.conf.py:11: cannot evaluate threads"),
            "{w}"
        );
        assert!(
            w.contains("gunicorn.conf.py:12: unterminated string"),
            "{w}"
        );
        assert_eq!(
            get(&c, "workers"),
            Some(Value::Int(2)),
            "the if block is not run"
        );
    }

    #[test]
    fn nesting_deeper_than_the_bound_is_refused_naming_the_file_and_line() {
        let deep = 100_000;
        for expr in [
            format!("{}1{}", "(".repeat(deep), ")".repeat(deep)),
            "(".repeat(deep),
            format!("{}1{}", "[".repeat(deep), "]".repeat(deep)),
            format!("{}1", "-".repeat(deep)),
            format!("{}1", "not ".repeat(deep)),
            format!("{}1{}", "int(".repeat(deep), ")".repeat(deep)),
        ] {
            let why = refused(&format!("workers = 2\ntimeout = {expr}\n"));
            assert!(
                why.starts_with(
                    "config file gunicorn.conf.py:2: timeout: expression nested deeper than 100"
                ),
                "{why}"
            );
        }
        // Within the bound, nesting evaluates.
        let c = run(
            &format!("timeout = {}7{}\n", "(".repeat(90), ")".repeat(90)),
            &[],
        );
        assert_eq!(get(&c, "timeout"), Some(Value::Int(7)));
    }

    #[test]
    fn files_and_values_over_their_size_bounds_are_refused() {
        // A file over 1 MiB (a comment, so that only its size is wrong).
        let big = format!("workers = 2\n#{}\n", "x".repeat(MAX_FILE_BYTES));
        let why = refused(&big);
        assert!(
            why.contains("gunicorn.conf.py: larger than 1024 KiB"),
            "{why}"
        );
        // A string doubled 40 times stops at the first doubling over 1 MiB (line 12).
        let mut src = format!("a = '{}'\n", "x".repeat(1024));
        src.push_str(&"a = a + a\n".repeat(40));
        let why = refused(&src);
        assert_eq!(
            why,
            "config file gunicorn.conf.py:12: a: a value larger than 1 MiB"
        );
        // A list of large strings, an f-string and a str() of one.
        let half = format!("a = '{}'\n", "x".repeat(600 << 10));
        for line2 in [
            "b = [a, a]",
            "b = (a, a, a)",
            "b = f'{a}{a}'",
            "b = max(a, a)",
            "b = str([a, a])",
            "b = f'{a}' f'{a}'",
        ] {
            let why = refused(&format!("{half}{line2}\n"));
            assert!(
                why.starts_with("config file gunicorn.conf.py:2: b: "),
                "{line2}: {why}"
            );
        }
        // Copies of one large value: the file's values together are bounded too.
        let mut src = half.clone();
        for i in 0..10 {
            src.push_str(&format!("c{i} = a\n"));
        }
        let why = refused(&src);
        assert!(why.contains("more than 4 MiB together"), "{why}");
        assert!(
            why.starts_with("config file gunicorn.conf.py:7: c5: "),
            "{why}"
        );
    }

    #[test]
    fn warnings_name_the_setting_and_never_quote_the_line() {
        let src = "workers = 2\n    token = 's3cret'\ndb_password = {'s3cret': 1}\n\
                   api_key = 's3cret'.upper()\nprint('s3cret')\nthreads = int('s3cret')\n\
                   timeout = -'s3cret'\nkeepalive = 's3cret' * 2\n\
                   graceful_timeout = 's3cret' $\nbacklog = 12s3cret\n";
        let c = run(src, &[]);
        let w = c.warnings.join("\n");
        assert!(!w.contains("s3cret"), "{w}");
        for expected in [
            "gunicorn.conf.py:2: unexpected indentation; ignored",
            "gunicorn.conf.py:3: db_password: unsupported character U+007B; ignored",
            "gunicorn.conf.py:4: cannot evaluate api_key (unsupported '.'); ignored",
            "gunicorn.conf.py:5: outside the supported subset",
            "gunicorn.conf.py:6: cannot evaluate threads (int() of a string that is not a number)",
            "gunicorn.conf.py:7: cannot evaluate timeout (cannot negate a string)",
            "gunicorn.conf.py:8: cannot evaluate keepalive (a string is not a number)",
            "gunicorn.conf.py:9: graceful_timeout: unsupported character U+0024; ignored",
            "gunicorn.conf.py:10: backlog: bad number; ignored",
        ] {
            assert!(w.contains(expected), "{expected}\n{w}");
        }
        assert_eq!(get(&c, "workers"), Some(Value::Int(2)));
    }

    #[test]
    fn a_file_that_is_not_text_is_refused_quoting_nothing() {
        let environ = b"SECRET_KEY=s3cret\0PATH=/bin\0".to_vec();
        let why = text("/proc/self/environ", environ).unwrap_err();
        assert_eq!(
            why,
            "config file /proc/self/environ: not a config file (it contains NUL bytes); not read"
        );
        let why = text("x.py", vec![b'a', 0xff, 0xfe, b'\n']).unwrap_err();
        assert_eq!(
            why,
            "config file x.py: not a config file (not UTF-8 text); not read"
        );
        let why = text("x.py", vec![b'#'; MAX_FILE_BYTES + 1]).unwrap_err();
        assert_eq!(why, "config file x.py: larger than 1024 KiB; not read");
        assert_eq!(
            text("x.py", b"workers = 2\n".to_vec()).unwrap(),
            "workers = 2\n"
        );
        let why = refused("SECRET=s3cret\0workers = 2\n");
        assert!(
            why.contains("NUL bytes") && !why.contains("s3cret"),
            "{why}"
        );
    }

    #[test]
    fn a_bom_and_cr_line_endings_are_read_as_python_reads_them() {
        for src in [
            "\u{feff}workers = 3\ntimeout = 5\n",
            "workers = 3\r\ntimeout = 5\r\n",
            "\u{feff}workers = 3\r\n\r\n# c\r\ntimeout = (\r  5)\r",
            "\"\"\"doc\rstring\"\"\"\rworkers = 3\rtimeout = 5",
        ] {
            let c = run(src, &[]);
            assert!(c.warnings.is_empty(), "{src:?}: {:?}", c.warnings);
            assert_eq!(get(&c, "workers"), Some(Value::Int(3)), "{src:?}");
            assert_eq!(get(&c, "timeout"), Some(Value::Int(5)), "{src:?}");
        }
        let c = run("x = \"\"\"a\r\nb\"\"\"\n", &[]);
        assert_eq!(get(&c, "x"), Some(Value::Str("a\nb".into())));
    }

    #[test]
    fn floor_division_and_modulo_are_pythons() {
        let c = run(
            "a = -7 // 2\nb = -7 % 2\nc = 7 % -2\nd = 7 // -2\ne = -7 // -2\nf = -7 % -2\n\
             g = 7 // 2\nh = 7 % 2\ni = -7.0 % 2\nj = 7.0 % -2\nk = -6 // 2\nl = -6 % 4\n",
            &[],
        );
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let want = [
            ("a", Value::Int(-4)),
            ("b", Value::Int(1)),
            ("c", Value::Int(-1)),
            ("d", Value::Int(-4)),
            ("e", Value::Int(3)),
            ("f", Value::Int(-1)),
            ("g", Value::Int(3)),
            ("h", Value::Int(1)),
            ("i", Value::Float(1.0)),
            ("j", Value::Float(-1.0)),
            ("k", Value::Int(-3)),
            ("l", Value::Int(2)),
        ];
        for (name, value) in want {
            assert_eq!(get(&c, name), Some(value), "{name}");
        }
        let c = run("a = 1 // 0\nb = 1 % 0\n", &[]);
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    }
}
