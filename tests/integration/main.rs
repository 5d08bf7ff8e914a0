//! Integration tests: the real `amove-agent` binary over real HTTP.
//! One test binary (one link step) with a module per area.

// A test that cannot set itself up should stop right there, loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod config_api;
mod directory;
mod fake_oidc;
mod groups;
mod hardening;
mod import_e2e;
mod network;
mod oidc;
mod openapi;
mod policy;
mod saml;
mod saml_enterprise;
mod saml_slo;
mod sessions;
mod storage;
mod token_exchange;
