//! System tests: one binary (one link step), one module per area.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod foundation;
