//! `cargo xtask fuzz [--time SECONDS]`: runs every cargo-fuzz target for a
//! bounded time (default 60 s each), with memory limits so unbounded allocation
//! counts as a failure.
//!
//! Installs cargo-fuzz when it is missing. The toolchain here is stable, so the
//! targets build without a sanitizer (`--sanitizer none`, coverage-guided
//! libFuzzer still) and with `RUSTC_BOOTSTRAP=1` for the flags cargo-fuzz passes.
//! Seeds come from the Jira fixtures. A crash fails the task and leaves its input
//! under `fuzz/artifacts/<target>/`; fix it and keep it as a regression test.

use std::process::Command;

use anyhow::{Context as _, bail};

use crate::workspace::{self, cargo, run as run_command};

const TARGETS: &[&str] = &[
    "webhook_intake",
    "field_transform",
    "page_token",
    "grpc_request",
    "auth_check",
];

fn has_cargo_fuzz() -> bool {
    cargo()
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn seed(target: &str) -> anyhow::Result<std::path::PathBuf> {
    let root = workspace::root();
    let corpus = root.join("fuzz/corpus").join(target);
    std::fs::create_dir_all(&corpus)?;
    let fixtures = root.join("fixtures/jira");
    match target {
        "webhook_intake" => {
            for entry in std::fs::read_dir(&fixtures)? {
                let path = entry?.path();
                if path.extension().is_some_and(|e| e == "json") {
                    let mut input = vec![71u8];
                    input.extend_from_slice(
                        b"sha256=0000000000000000000000000000000000000000000000000000000000000000",
                    );
                    input.extend(std::fs::read(&path)?);
                    let name = path.file_name().context("file name")?;
                    std::fs::write(corpus.join(name), input)?;
                }
            }
        }
        "field_transform" => {
            std::fs::write(
                corpus.join("sentry-case.json"),
                br#"{"customfield_10200":"sad","customfield_10300":["Feature 1","Feature 2"],"labels":"fuzzy , ,  bunnies","customfield_10500":"1.5","reporter":"abc","title":"x"}"#,
            )?;
        }
        "auth_check" => {
            std::fs::write(
                corpus.join("roles"),
                b"ops:admin=admin-token-0a1b2c3d\ntracker:service=sha256:00\nacme:org:1=acme-token-5d4c3b2a\0acme-token-5d4c3b2a\0/assignment.v1.GroupService/GetGroup",
            )?;
        }
        "grpc_request" => {
            // A CreateIssueRequest-shaped message: field 1 "acme-jira", field 2 = 1.
            std::fs::write(corpus.join("create"), b"\x0a\x09acme-jira\x10\x01")?;
        }
        _ => {
            std::fs::write(corpus.join("garbage"), b"AQAAAAAAAAAAMTI")?;
        }
    }
    Ok(corpus)
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let mut seconds = 60u64;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--time" => {
                seconds = args
                    .next()
                    .context("--time needs a number of seconds")?
                    .parse()
                    .context("--time needs a number of seconds")?;
            }
            other => bail!("unknown argument {other:?} (usage: cargo xtask fuzz [--time SECONDS])"),
        }
    }
    if !has_cargo_fuzz() {
        let mut install = cargo();
        install.args(["install", "cargo-fuzz", "--locked"]);
        run_command(install, "cargo install cargo-fuzz")?;
    }
    let root = workspace::root();
    for target in TARGETS {
        let corpus = seed(target)?;
        let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        command
            .current_dir(&root)
            .env("RUSTC_BOOTSTRAP", "1")
            .args([
                "fuzz",
                "run",
                "--fuzz-dir",
                "fuzz",
                "--sanitizer",
                "none",
                target,
            ])
            .arg(&corpus)
            .args([
                "--",
                &format!("-max_total_time={seconds}"),
                "-rss_limit_mb=1024",
                "-malloc_limit_mb=256",
                "-timeout=10",
            ]);
        run_command(command, &format!("fuzzing {target} for {seconds} s"))?;
    }
    Ok(())
}
