//! Rules of the codebase that matter, as tests (rust-analyzer's `tidy`): they read
//! the sources as text and fail with the file and line that break a rule.
//!
//! - the repository stands alone: nothing points at files outside it;
//! - protobuf stays at the tracker's API edge: no `pb::`/`proto::` path in its
//!   webhook and issue modules;
//! - a sea-orm model stays in the module that owns its table: no
//!   `<entity>::Model` in a public signature (a `pub` function or field) outside
//!   `storage/` and the owning module.

use std::path::{Path, PathBuf};

use crate::workspace::root;

/// Every file below `dir` whose name ends with one of `extensions`, skipping
/// build output and tool folders.
fn files(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !matches!(
                name.as_str(),
                "target" | ".git" | "node_modules" | ".ci" | "data" | "fuzz"
            ) {
                found.extend(files(&path, extensions));
            }
        } else if extensions.iter().any(|ext| name.ends_with(ext)) {
            found.push(path);
        }
    }
    found
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn nothing_points_outside_the_repository() {
    let mut bad = Vec::new();
    for file in files(&root(), &[".rs", ".md", ".sh", ".toml", ".py", ".proto"]) {
        let name = relative(&file);
        if name == "CHANGELOG.md" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for (n, line) in text.lines().enumerate() {
            // Spelled in two parts so this file does not match itself.
            if line.contains(concat!("../", "shared")) {
                bad.push(format!("{name}:{}: {line}", n + 1));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "files point outside the repository:\n{}",
        bad.join("\n")
    );
}

#[test]
fn protobuf_stays_at_the_trackers_edge() {
    let mut bad = Vec::new();
    for dir in ["tracker-service/src/webhooks", "tracker-service/src/issues"] {
        for file in files(&root().join(dir), &[".rs"]) {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            for (n, line) in text.lines().enumerate() {
                if line.contains("pb::") || line.contains("proto::") {
                    bad.push(format!("{}:{}: {line}", relative(&file), n + 1));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "protobuf past the API edge:\n{}",
        bad.join("\n")
    );
}

/// Which source files (or folders, ending in `/`) own each table's entity.
const OWNERS: &[(&str, &[&str])] = &[
    // assignment-service
    ("activity", &["assignment-service/src/groups/"]),
    ("group", &["assignment-service/src/groups/"]),
    ("group_assignee", &["assignment-service/src/groups/"]),
    (
        "external_issue",
        &["assignment-service/src/external_issues.rs"],
    ),
    ("group_link", &["assignment-service/src/external_issues.rs"]),
    ("installation", &["assignment-service/src/directory.rs"]),
    ("organization", &["assignment-service/src/directory.rs"]),
    ("project", &["assignment-service/src/directory.rs"]),
    ("project_member", &["assignment-service/src/directory.rs"]),
    ("user", &["assignment-service/src/directory.rs"]),
    ("user_email", &["assignment-service/src/directory.rs"]),
    (
        "notification",
        &["assignment-service/src/notification_log.rs"],
    ),
    (
        "notification_log",
        &["assignment-service/src/notification_log.rs"],
    ),
    (
        "notification_thread",
        &["assignment-service/src/notification_log.rs"],
    ),
    ("subscriber", &["assignment-service/src/subscribers.rs"]),
    // tracker-service
    ("integration", &["tracker-service/src/integrations.rs"]),
    ("issue_creation", &["tracker-service/src/issues/"]),
    (
        "webhook_delivery",
        &["tracker-service/src/webhooks/inbox.rs"],
    ),
];

/// The entities a line names as `<entity>::Model` or `<entity>::ActiveModel`.
fn models_named(line: &str) -> Vec<&str> {
    let mut named = Vec::new();
    for marker in ["::Model", "::ActiveModel"] {
        let mut rest = line;
        while let Some(at) = rest.find(marker) {
            let before = &rest[..at];
            let start = before
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(0, |i| i + 1);
            named.push(&before[start..]);
            rest = &rest[at + marker.len()..];
        }
    }
    named
}

/// The public signatures in `text`: `pub` functions (through their opening
/// brace) and `pub` fields, with the line each starts on.
fn public_signatures(text: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_start();
        let public = line.starts_with("pub ") || line.starts_with("pub(");
        if public && (line.contains(" fn ") || line.contains("fn ")) && line.contains("fn") {
            let mut signature = String::new();
            let start = i;
            while i < lines.len() {
                signature.push_str(lines[i]);
                if lines[i].contains('{') || lines[i].trim_end().ends_with(';') {
                    break;
                }
                i += 1;
            }
            let signature = signature.split('{').next().unwrap_or_default().to_owned();
            found.push((start + 1, signature));
        } else if public && line.contains(':') && !line.contains('(') {
            found.push((i + 1, line.to_owned()));
        }
        i += 1;
    }
    found
}

#[test]
fn sea_orm_models_stay_in_the_module_that_owns_their_table() {
    let mut bad = Vec::new();
    for service in ["assignment-service/src", "tracker-service/src"] {
        for file in files(&root().join(service), &[".rs"]) {
            let name = relative(&file);
            if name.contains("/storage/") {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            for (line, signature) in public_signatures(&text) {
                for entity in models_named(&signature) {
                    let owners = OWNERS
                        .iter()
                        .find(|(e, _)| *e == entity)
                        .map_or(&[][..], |(_, o)| *o);
                    if !owners.iter().any(|owner| name.starts_with(owner)) {
                        bad.push(format!("{name}:{line}: {}", signature.trim()));
                    }
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "sea-orm models in public signatures outside their table's module:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_rules_see_what_they_look_for() {
    assert_eq!(
        models_named("pub fn f(a: group::Model) -> webhook_delivery::ActiveModel"),
        vec!["group", "webhook_delivery"]
    );
    let signatures = public_signatures(
        "pub async fn f(\n    row: x::Model,\n) -> Result<(), E> {\n}\nfn g(row: y::Model) {}\n    pub row: z::Model,\n",
    );
    assert_eq!(signatures.len(), 2);
    assert!(signatures[0].1.contains("x::Model"));
    assert!(signatures[1].1.contains("z::Model"));
}
