//! `cargo xtask <task>`: the project's automation, in Rust so it runs wherever
//! cargo does.
//!
//! - `up`: build both services and run them on SQLite (the README's first command).
//! - `demo`: the whole flow in one command, on a temporary database and a Jira
//!   simulator.
//! - `ci`: formatting, lints, tests and `buf lint`, as CI runs them.
//! - `bench [--db sqlite|postgres] [--quick]`: the benchmarks, release build.
//! - `fuzz [--time SECONDS]`: every fuzz target for a bounded time.

#![allow(clippy::print_stdout)]

mod bench;
mod ci;
mod demo;
mod fuzz;
#[cfg(test)]
mod tidy;
mod up;
mod workspace;

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  up      build and run both services on SQLite (Ctrl-C stops them)
  demo    create an issue, post webhooks, watch the notifications (one command)
  ci      cargo fmt --check, clippy -D warnings, the tests, buf lint
  bench   release build, then the benchmarks (--db sqlite|postgres, --quick)
  fuzz    run every fuzz target for --time SECONDS (default 60)
";

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let task = args.next();
    let rest: Vec<String> = args.collect();
    match task.as_deref() {
        Some("up") => up::run(&rest),
        Some("ci") => ci::run(&rest),
        Some("demo") => demo::run(&rest),
        Some("fuzz") => fuzz::run(&rest),
        Some("bench") => bench::run(&rest),
        Some("-h" | "--help" | "help") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => {
            print!("{USAGE}");
            anyhow::bail!("unknown task {other:?}")
        }
    }
}
