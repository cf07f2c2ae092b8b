//! `cargo xtask bench [--db sqlite|postgres] [--quick] [--only a,b]`: builds the
//! services, the Jira simulator and the bench in release mode and runs the
//! scenarios (see `bench/`). Figures go to `target/bench/<db>[-quick]/`: one
//! JSON file per scenario, `summary.md` with the table; a run with `--only`
//! writes to `target/bench/<db>[-quick]-only-<a+b>/`, so it never replaces a
//! full run's summary.

use std::process::Command;

use anyhow::{Context as _, bail};

use crate::workspace::{self, cargo, run as run_command};

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let mut db = "sqlite".to_owned();
    let mut quick = false;
    let mut passthrough = Vec::new();
    let mut only: Option<String> = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--db" => {
                db = args
                    .next()
                    .context("--db needs sqlite or postgres")?
                    .clone()
            }
            "--quick" => quick = true,
            "--only" => {
                let names = args.next().context("--only needs scenario names")?.clone();
                only = Some(names.replace(',', "+"));
                passthrough.push("--only".to_owned());
                passthrough.push(names);
            }
            other => bail!(
                "unknown argument {other:?} (usage: cargo xtask bench [--db sqlite|postgres] [--quick] [--only SCENARIOS])"
            ),
        }
    }
    if db != "sqlite" && db != "postgres" {
        bail!("--db must be sqlite or postgres, not {db:?}");
    }
    let mut build = cargo();
    // The whole workspace, as `cargo build --release --workspace` does: the
    // same feature unification, so a release build made beforehand is reused
    // instead of rebuilt.
    build.args(["build", "--release", "--workspace"]);
    run_command(build, "cargo build --release --workspace")?;
    let root = workspace::root();
    let bin_dir = root.join("target/release");
    let mut folder = if quick {
        format!("{db}-quick")
    } else {
        db.clone()
    };
    if let Some(only) = &only {
        folder.push_str(&format!("-only-{only}"));
    }
    let out = root.join("target/bench").join(folder);
    // Many subscribers need many file descriptors: raise the soft limit to the
    // hard one for the bench (the services it starts raise their own).
    let mut shell = format!(
        "ulimit -n 65536 2>/dev/null || ulimit -n \"$(ulimit -Hn)\"; exec '{}' run --db {db} --bin-dir '{}' --out '{}'",
        bin_dir.join("jira-sync-bench").display(),
        bin_dir.display(),
        out.display()
    );
    if quick {
        shell.push_str(" --quick");
    }
    for arg in &passthrough {
        shell.push_str(&format!(" '{arg}'"));
    }
    let mut command = Command::new("sh");
    command.current_dir(&root).arg("-c").arg(shell);
    run_command(
        command,
        &format!("bench ({db}{})", if quick { ", quick" } else { "" }),
    )?;
    println!("figures: {}", out.display());
    Ok(())
}
