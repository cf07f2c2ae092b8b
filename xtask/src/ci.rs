//! `cargo xtask ci`: what CI checks, runnable locally.

use std::path::PathBuf;
use std::process::Command;

use crate::workspace::{self, cargo, run as run_command};

fn run_buf_lint() -> anyhow::Result<bool> {
    let local = workspace::root().join(".ci/tools/node_modules/.bin/buf");
    let buf = if local.exists() {
        Some(local)
    } else {
        which("buf")
    };
    let Some(buf) = buf else {
        println!("==> buf lint skipped: buf is not installed (npm install @bufbuild/buf)");
        return Ok(false);
    };
    let mut command = Command::new(buf);
    command.arg("lint").current_dir(workspace::root());
    run_command(command, "buf lint")?;
    Ok(true)
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    })
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    if !args.is_empty() {
        anyhow::bail!("ci takes no arguments");
    }
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    run_command(fmt, "cargo fmt --all -- --check")?;

    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run_command(
        clippy,
        "cargo clippy --workspace --all-targets -- -D warnings",
    )?;

    let mut test = cargo();
    test.args(["test", "--workspace"]);
    run_command(test, "cargo test --workspace")?;

    run_buf_lint()?;
    Ok(())
}
