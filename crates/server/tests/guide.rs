//! The user guide cannot drift from the code: its configuration reference
//! (`docs/guide/configuration.md`) has a row for every key the config file takes and for
//! no other, every environment variable and flag of `switchboard serve` is in it, and
//! every TOML example in the guide (and `deploy/switchboard.toml`) is a valid config.
//!
//! The keys come from serde, not from a list kept here: asked for an unknown key, each
//! section's struct (`deny_unknown_fields`) names every key it knows. A field added to the
//! config without a row in the reference fails this test.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use switchboard_server::config::Config;

const PROBE: &str = "zz_probe_key";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The keys the table at `section` (`""`: the top level) knows, as serde lists them when
/// it meets an unknown one; `None` when `section` is not a table of named keys.
fn keys_of(section: &str) -> Option<BTreeSet<String>> {
    let doc = if section.is_empty() {
        format!("{PROBE} = 1\n")
    } else {
        format!("[{section}]\n{PROBE} = 1\n")
    };
    let err = Config::from_toml(&doc, "probe").err()?.to_string();
    if err.contains("there are no fields") {
        return Some(BTreeSet::new());
    }
    let (_, listed) = err.split_once(&format!("unknown field `{PROBE}`, expected"))?;
    let listed = listed.lines().next().unwrap_or("");
    Some(
        listed
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect(),
    )
}

/// Every section of the config file (`""`, `limits`, `namespaces.NAME`, ...) and its keys.
fn schema() -> BTreeMap<String, BTreeSet<String>> {
    let top = keys_of("").expect("the top level lists its keys");
    let mut sections = BTreeMap::new();
    let mut leaves = BTreeSet::new();
    for key in top {
        if let Some(keys) = keys_of(&key) {
            sections.insert(key, keys);
        } else if let Some(keys) = keys_of(&format!("{key}.NAME")) {
            // A map of tables, one per name: `[namespaces.NAME]`.
            sections.insert(format!("{key}.NAME"), keys);
        } else {
            leaves.insert(key);
        }
    }
    sections.insert(String::new(), leaves);
    sections
}

/// The reference's sections (`## Top-level keys`, ``## `[limits]` ``) and the keys of their
/// tables' rows (`` | `key` | ``).
fn documented(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            current = if heading.starts_with("Top-level keys") {
                Some(String::new())
            } else {
                heading
                    .split_once("`[")
                    .and_then(|(_, rest)| rest.split_once("]`"))
                    .map(|(name, _)| name.to_owned())
            };
            if let Some(c) = &current {
                out.entry(c.clone()).or_default();
            }
        } else if let (Some(c), Some(row)) = (&current, line.strip_prefix("| `")) {
            if let Some((key, _)) = row.split_once("` |") {
                out.get_mut(c).unwrap().insert(key.to_owned());
            }
        }
    }
    out
}

#[test]
fn the_configuration_reference_names_every_key_and_no_other() {
    let schema = schema();
    assert!(
        schema["limits"].contains("max_publish_bytes")
            && schema["namespaces.NAME"].contains("batch_window_ms")
            && schema[""].contains("listen"),
        "the probe reads serde's lists: {schema:?}"
    );
    let doc = documented(&read("docs/guide/configuration.md"));
    let mut problems = Vec::new();
    for (section, keys) in &schema {
        let shown = if section.is_empty() {
            "the top level".to_owned()
        } else {
            format!("[{section}]")
        };
        let Some(rows) = doc.get(section) else {
            problems.push(format!("no section for {shown}"));
            continue;
        };
        for key in keys.difference(rows) {
            problems.push(format!("{shown}: no row for `{key}`"));
        }
        for key in rows.difference(keys) {
            problems.push(format!(
                "{shown}: a row for `{key}`, which the config does not take"
            ));
        }
    }
    for section in doc.keys().filter(|s| !schema.contains_key(*s)) {
        problems.push(format!("a section [{section}] the config does not have"));
    }
    assert!(
        problems.is_empty(),
        "docs/guide/configuration.md is out of date:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_reference_names_every_flag_and_environment_variable_of_serve() {
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let doc = read("docs/guide/configuration.md");
    let mut named = 0;
    for word in help.split(|c: char| c.is_whitespace() || c == '[' || c == ']' || c == ',') {
        let word = word.trim_end_matches(['=', ':', ';', ')', '.']);
        let is_flag = word.starts_with("--") && word.len() > 2 && word != "--help";
        let is_env = word.starts_with("SWITCHBOARD_");
        if is_flag || is_env {
            named += 1;
            assert!(
                doc.contains(&format!("`{word}")),
                "docs/guide/configuration.md does not name {word} (from `switchboard serve --help`)"
            );
        }
    }
    assert!(named >= 8, "read the flags and variables: {help}");
}

#[test]
fn every_toml_example_in_the_guide_is_a_valid_config() {
    let dir = root().join("docs/guide");
    let mut checked = 0;
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut block: Option<String> = None;
        for (n, line) in text.lines().enumerate() {
            match (&mut block, line.trim_start()) {
                (None, "```toml") => block = Some(String::new()),
                (Some(b), "```") => {
                    let origin = format!("{}:{}", file.display(), n + 1);
                    if let Err(e) = Config::from_toml(b, &origin) {
                        panic!("{e}\n{b}");
                    }
                    checked += 1;
                    block = None;
                }
                (Some(b), _) => {
                    b.push_str(line);
                    b.push('\n');
                }
                (None, _) => {}
            }
        }
    }
    assert!(checked >= 5, "found the examples: {checked}");
    Config::from_toml(&read("deploy/switchboard.toml"), "deploy/switchboard.toml").unwrap();
}

/// Every relative link between the guide's pages (and to the repository's files) leads to
/// a file that exists and, with `#anchor`, to a heading of that page.
#[test]
fn the_guide_links_resolve() {
    let dir = root().join("docs/guide");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let file = entry.unwrap().path();
        if file.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (_, rest) in text.match_indices("](").map(|(i, _)| text.split_at(i + 2)) {
            let Some((target, _)) = rest.split_once(')') else {
                continue;
            };
            if target.contains("://") || target.contains(' ') {
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
            let linked = if path.is_empty() {
                file.clone()
            } else {
                dir.join(path)
            };
            assert!(
                linked.exists(),
                "{}: {target}: no such file",
                file.display()
            );
            if !anchor.is_empty() {
                let page = std::fs::read_to_string(&linked).unwrap();
                let anchors: Vec<String> = page
                    .lines()
                    .filter_map(|l| l.strip_prefix('#'))
                    .map(|h| {
                        h.trim_start_matches('#')
                            .trim()
                            .to_lowercase()
                            .chars()
                            .filter_map(|c| match c {
                                ' ' => Some('-'),
                                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                                _ => None,
                            })
                            .collect()
                    })
                    .collect();
                assert!(
                    anchors.iter().any(|a| a == anchor),
                    "{}: {target}: no heading with that anchor in {anchors:?}",
                    file.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "found the links: {checked}");
}
