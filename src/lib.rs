//! Amove desktop agent core: the local SSO API, its storage and its protocol logic — no GUI.
//!
//! The desktop shell (`src-tauri/`) and the headless `amove-agent` binary both start the
//! same server through [`server::run`]; tests drive [`api::router`] or the real binary.

pub mod admin;
pub mod api;
pub mod auth;
pub mod bootstrap;
pub mod clock;
pub mod config;
pub mod cpu;
pub mod crypto;
pub mod domain;
pub mod error;
pub mod fields;
pub mod login;
pub mod policy;
pub mod query;
pub mod secret;
pub mod server;
pub mod sso;
pub mod state;
pub mod store;
pub mod text;

#[cfg(test)]
mod proptests;

pub use error::{Error, Result};
