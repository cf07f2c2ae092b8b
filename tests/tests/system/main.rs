//! System tests: one binary (one link step), one module per area.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod access;
mod api_polish;
mod client;
mod create_issue;
mod directory;
mod foundation;
mod group_actions;
mod hardening;
mod inbound_sync;
mod issue_flow;
mod links;
mod notifier;
mod participants;
mod plans;
mod postgres;
mod scale_out;
mod security;
mod statement_cache;
mod stories;
mod stream;
mod two_way;
mod webhooks;
