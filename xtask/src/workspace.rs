//! Where the workspace is, and running commands in it.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, bail};

/// The workspace root (the parent of `xtask/`).
pub fn root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map_or(manifest_dir.clone(), PathBuf::from)
}

/// The cargo that runs us (so `cargo +toolchain xtask` stays consistent).
pub fn cargo() -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command.current_dir(root());
    // `cargo run` gave us the variables it sets for the program it runs
    // (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, …). Some build scripts track them
    // (ring reruns when `CARGO_MANIFEST_DIR` changes), so passing them on would
    // make a build from here rebuild what `cargo build` just built by hand.
    for (name, _) in std::env::vars_os() {
        if let Some(name) = name.to_str()
            && (name.starts_with("CARGO_PKG_")
                || matches!(
                    name,
                    "CARGO_MANIFEST_DIR"
                        | "CARGO_MANIFEST_PATH"
                        | "CARGO_MANIFEST_LINKS"
                        | "CARGO_CRATE_NAME"
                        | "CARGO_BIN_NAME"
                        | "CARGO_PRIMARY_PACKAGE"
                ))
        {
            command.env_remove(name);
        }
    }
    command
}

/// Runs `command`, failing with its description when it fails.
pub fn run(mut command: Command, what: &str) -> anyhow::Result<()> {
    println!("==> {what}");
    let status = command
        .status()
        .with_context(|| format!("starting: {what}"))?;
    if !status.success() {
        bail!("failed ({status}): {what}");
    }
    Ok(())
}
