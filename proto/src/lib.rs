//! The gRPC contracts of the tracker / assignment service pair.
//!
//! This crate owns code generation: `build.rs` compiles the `.proto` files under
//! `proto/` with a pure-Rust compiler and generates prost messages plus tonic
//! clients and servers. It also embeds the encoded file descriptor set, which both
//! services serve through gRPC reflection so `grpcurl` works without proto files.
//!
//! Generated types stay at the edges: the services convert them into their own
//! domain types (`TryFrom`) before doing anything with them.

pub mod codec;
pub mod reason;
pub mod stream_response;

/// `assignment.v1`: directory, groups, external issues with inbound sync, and the
/// notification stream.
pub mod assignment {
    /// Version 1 of the assignment API.
    pub mod v1 {
        #![allow(missing_docs, missing_debug_implementations, clippy::all)]
        tonic::include_proto!("assignment.v1");
        pub use crate::stream_response::{SubscribeResponse, subscribe_response};
    }
}

/// `tracker.v1`: Jira integrations, issue creation and the webhook inbox.
pub mod tracker {
    /// Version 1 of the tracker API.
    pub mod v1 {
        #![allow(missing_docs, missing_debug_implementations, clippy::all)]
        tonic::include_proto!("tracker.v1");
    }
}

/// `notifier.v1`: destinations of notifications and the delivery record.
pub mod notifier {
    /// Version 1 of the notifier API.
    pub mod v1 {
        #![allow(missing_docs, missing_debug_implementations, clippy::all)]
        tonic::include_proto!("notifier.v1");
    }
}

/// The encoded `FileDescriptorSet` of every proto file (with its imports), for
/// gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/descriptor_set.bin"));

/// Every RPC of the contracts, as the paths gRPC calls them by
/// (`/assignment.v1.GroupService/GetGroup`), read from the descriptor set.
pub fn method_paths() -> Vec<String> {
    use prost::Message as _;
    let Ok(set) = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET) else {
        return Vec::new();
    };
    let mut paths = Vec::new();
    for file in set.file {
        let package = file.package.unwrap_or_default();
        for service in file.service {
            let service_name = service.name.unwrap_or_default();
            for method in service.method {
                paths.push(format!(
                    "/{package}.{service_name}/{}",
                    method.name.unwrap_or_default()
                ));
            }
        }
    }
    paths
}

/// Re-exported so the services name one version of the well-known types.
pub use prost_types;

#[cfg(test)]
mod tests {
    #[test]
    fn method_paths_come_from_the_descriptor_set() {
        let paths = super::method_paths();
        assert!(paths.contains(&"/assignment.v1.GroupService/GetGroup".to_owned()));
        assert!(paths.contains(&"/tracker.v1.TrackerService/CreateIssue".to_owned()));
        assert!(
            paths
                .iter()
                .all(|p| p.starts_with('/') && p.matches('/').count() == 2)
        );
    }
}
