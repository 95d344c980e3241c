//! The Cairnfile: the Dockerfile subset `cairn template build` reads — `FROM`, `RUN`
//! (shell or exec form), `COPY`, `ENV`, `WORKDIR`, `USER`, comments and line continuations.
//!
//! Pure parsing: no file system, no network (the build is in `build.rs`).

use crate::client::CliError;

/// One instruction after `FROM`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A command: its argv (shell form is `/bin/sh -c LINE`).
    Run(Vec<String>),
    /// Files from the context: sources (relative to it) and the destination.
    Copy {
        /// Paths in the context directory.
        srcs: Vec<String>,
        /// Where in the sandbox (absolute, or relative to the WORKDIR).
        dst: String,
    },
    /// Variables set for the later steps and the template's sandboxes.
    Env(Vec<(String, String)>),
    /// The working directory of the later steps and the template's sandboxes.
    Workdir(String),
    /// The user of the later steps and the template's sandboxes.
    User(String),
}

/// A parsed Cairnfile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cairnfile {
    /// What it starts from: an image or a template name.
    pub from: String,
    /// The steps, each with the line it starts on and its text (for messages).
    pub steps: Vec<(usize, String, Step)>,
}

fn bad(line: usize, msg: impl std::fmt::Display) -> CliError {
    CliError::invalid(format!("Cairnfile line {line}: {msg}"))
}

/// Joins continued lines (a line ending in `\`), dropping comments and blank lines; yields
/// (first line number, logical line).
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let trimmed = raw.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && cur.is_none()) {
            continue;
        }
        let (body, more) = match trimmed.strip_suffix('\\') {
            Some(b) => (b, true),
            None => (trimmed, false),
        };
        let entry = cur.get_or_insert_with(|| (n, String::new()));
        if !entry.1.is_empty() && !body.is_empty() {
            entry.1.push(' ');
        }
        entry.1.push_str(body.trim());
        if !more {
            if let Some(done) = cur.take() {
                if !done.1.is_empty() {
                    out.push(done);
                }
            }
        }
    }
    if let Some(done) = cur.filter(|d| !d.1.is_empty()) {
        out.push(done);
    }
    out
}

/// A JSON array of strings (the exec form), when `rest` is one.
fn exec_form(line: usize, rest: &str) -> Result<Option<Vec<String>>, CliError> {
    if !rest.starts_with('[') {
        return Ok(None);
    }
    let argv: Vec<String> = serde_json::from_str(rest).map_err(|e| {
        bad(
            line,
            format!("the exec form must be a JSON array of strings, like [\"ls\", \"-l\"] ({e})"),
        )
    })?;
    if argv.is_empty() {
        return Err(bad(line, "an empty command"));
    }
    Ok(Some(argv))
}

/// Splits on whitespace, with "double" and 'single' quotes and backslash escapes.
fn words(line: usize, s: &str) -> Result<Vec<String>, CliError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') | (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(bad(line, "a quote is not closed"));
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

fn env_key_ok(k: &str) -> bool {
    let mut b = k.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

fn parse_env(line: usize, rest: &str) -> Result<Vec<(String, String)>, CliError> {
    let ws = words(line, rest)?;
    let pairs: Vec<(String, String)> = if ws.first().is_some_and(|w| !w.contains('=')) {
        // ENV KEY VALUE...
        let value = rest.trim_start()[ws[0].len()..].trim().to_string();
        vec![(ws[0].clone(), value)]
    } else {
        ws.iter()
            .map(|w| {
                let (k, v) = w.split_once('=').unwrap_or((w, ""));
                (k.to_string(), v.to_string())
            })
            .collect()
    };
    if pairs.is_empty() {
        return Err(bad(line, "ENV needs KEY=VALUE"));
    }
    if let Some((k, _)) = pairs.iter().find(|(k, _)| !env_key_ok(k)) {
        return Err(bad(
            line,
            format!("'{k}' is no variable name (a letter or _, then letters, digits or _)"),
        ));
    }
    Ok(pairs)
}

/// Parses a Cairnfile.
pub fn parse(text: &str) -> Result<Cairnfile, CliError> {
    let mut from: Option<String> = None;
    let mut steps = Vec::new();
    for (n, l) in logical_lines(text) {
        let (word, rest) = match l.split_once(char::is_whitespace) {
            Some((w, r)) => (w, r.trim()),
            None => (l.as_str(), ""),
        };
        let instr = word.to_ascii_uppercase();
        if from.is_none() && instr != "FROM" {
            return Err(bad(
                n,
                format!("{instr} before FROM: start with FROM IMAGE or FROM TEMPLATE"),
            ));
        }
        if rest.is_empty() {
            return Err(bad(n, format!("{instr} needs an argument")));
        }
        if rest.starts_with("--") {
            return Err(bad(
                n,
                format!(
                    "{instr} options ({}) are not supported",
                    rest.split_whitespace().next().unwrap_or(rest)
                ),
            ));
        }
        let step = match instr.as_str() {
            "FROM" => {
                if from.is_some() {
                    return Err(bad(n, "a second FROM: a Cairnfile has one stage"));
                }
                let ws = words(n, rest)?;
                if ws.len() != 1 {
                    return Err(bad(n, "FROM takes one image or template name (no AS)"));
                }
                from = ws.into_iter().next();
                continue;
            }
            "RUN" => Step::Run(match exec_form(n, rest)? {
                Some(argv) => argv,
                None => vec!["/bin/sh".into(), "-c".into(), rest.to_string()],
            }),
            "COPY" => {
                let mut ws = match exec_form(n, rest)? {
                    Some(a) => a,
                    None => words(n, rest)?,
                };
                if ws.len() < 2 {
                    return Err(bad(n, "COPY needs a source and a destination: COPY SRC... DST"));
                }
                let dst = ws.pop().unwrap_or_default();
                if ws.len() > 1 && !dst.ends_with('/') {
                    return Err(bad(n, "COPY of several sources needs a destination ending in /"));
                }
                Step::Copy { srcs: ws, dst }
            }
            "ENV" => Step::Env(parse_env(n, rest)?),
            "WORKDIR" => Step::Workdir(rest.to_string()),
            "USER" => {
                let ws = words(n, rest)?;
                let numeric = ws.len() == 1
                    && ws[0].split(':').count() <= 2
                    && ws[0].split(':').all(|p| p.parse::<u32>().is_ok());
                if !numeric {
                    return Err(bad(
                        n,
                        "USER takes a numeric uid or uid:gid (find a name's with RUN id -u NAME)",
                    ));
                }
                Step::User(ws[0].clone())
            }
            other => {
                return Err(bad(
                    n,
                    format!("unknown instruction {other}: a Cairnfile has FROM, RUN, COPY, ENV, WORKDIR and USER"),
                ))
            }
        };
        steps.push((n, l.clone(), step));
    }
    let from =
        from.ok_or_else(|| CliError::invalid("the Cairnfile is empty: start with FROM IMAGE"))?;
    Ok(Cairnfile { from, steps })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_every_instruction_with_comments_and_continuations() {
        let f = parse(
            "# a comment\nfrom base\n\nRUN echo a \\\n  && echo b\nRUN [\"ls\", \"-l\"]\nCOPY src /app/\nENV A=1 B=\"two words\"\nENV C three four\nworkdir /app\nUSER 1000:1000\n",
        )
        .unwrap();
        assert_eq!(f.from, "base");
        let steps: Vec<Step> = f.steps.into_iter().map(|s| s.2).collect();
        assert_eq!(
            steps,
            vec![
                Step::Run(vec![
                    "/bin/sh".into(),
                    "-c".into(),
                    "echo a && echo b".into()
                ]),
                Step::Run(vec!["ls".into(), "-l".into()]),
                Step::Copy {
                    srcs: vec!["src".into()],
                    dst: "/app/".into()
                },
                Step::Env(vec![
                    ("A".into(), "1".into()),
                    ("B".into(), "two words".into())
                ]),
                Step::Env(vec![("C".into(), "three four".into())]),
                Step::Workdir("/app".into()),
                Step::User("1000:1000".into()),
            ]
        );
    }

    #[test]
    fn refuses_what_it_does_not_support_with_the_line() {
        for (text, words) in [
            ("RUN x", "before FROM"),
            ("FROM a\nADD x y", "unknown instruction ADD"),
            ("FROM a\nCOPY --chown=1 x y", "not supported"),
            ("FROM a\nCOPY x", "source and a destination"),
            ("FROM a\nFROM b", "second FROM"),
            ("FROM a\nRUN [\"x\"", "JSON array"),
            ("FROM a\nENV 1A=2", "no variable name"),
            ("FROM a\nUSER nobody", "numeric uid"),
            ("", "empty"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(words), "{text:?}: {e}");
        }
        assert!(parse("FROM a\nCOPY x y").is_ok());
        assert!(parse("FROM a\nCOPY x\ty z/").is_ok());
    }
}
