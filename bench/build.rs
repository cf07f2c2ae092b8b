//! Generates the baseline services (echo, broadcast) with the same pure-Rust
//! compiler as the `proto` crate.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let own = root.join("proto");
    let shared = root.join("../proto");
    println!(
        "cargo:rerun-if-changed={}",
        own.join("bench/v1/bench.proto").display()
    );
    let descriptors = protox::compile([own.join("bench/v1/bench.proto")], [own, shared])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .extern_path(".assignment.v1", "::proto::assignment::v1")
        .compile_fds(descriptors)?;
    Ok(())
}
