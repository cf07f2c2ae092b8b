//! Compiles `proto/**/*.proto` with `protox` (pure Rust, so no system `protoc`)
//! and hands the descriptors to `tonic-prost-build`. The encoded descriptor set is
//! also written to `OUT_DIR` so the services can serve reflection from it.

use std::path::PathBuf;

use prost::Message as _;

const PROTO_FILES: &[&str] = &[
    "assignment/v1/directory.proto",
    "assignment/v1/groups.proto",
    "assignment/v1/external_issues.proto",
    "assignment/v1/notifications.proto",
    "tracker/v1/tracker.proto",
    "notifier/v1/notifier.proto",
];

/// Third-party protos compiled into the reflection descriptor (so reflection
/// clients can decode error details) but not into Rust code.
const THIRD_PARTY_FILES: &[&str] = &["google/rpc/error_details.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    // protox does not print rerun-if-changed lines; without them a proto edit would
    // not rebuild the generated code.
    let third_party = root.join("third_party");
    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }
    for file in THIRD_PARTY_FILES {
        println!(
            "cargo:rerun-if-changed={}",
            third_party.join(file).display()
        );
    }

    let files: Vec<PathBuf> = PROTO_FILES.iter().map(|f| root.join(f)).collect();
    let descriptors = protox::compile(&files, [root.as_path()])?;

    let mut reflection = descriptors.clone();
    let extra = protox::compile(THIRD_PARTY_FILES, [third_party.as_path()])?;
    for file in extra.file {
        if !reflection.file.iter().any(|f| f.name == file.name) {
            reflection.file.push(file);
        }
    }
    std::fs::write(
        out_dir.join("descriptor_set.bin"),
        reflection.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .codec_path("crate::codec::LeanProstCodec")
        // Written by hand so a server can share one encoding between streams
        // (see `stream_response.rs`).
        .extern_path(
            ".assignment.v1.SubscribeResponse",
            "crate::stream_response::SubscribeResponse",
        )
        .compile_fds(descriptors)?;
    Ok(())
}
