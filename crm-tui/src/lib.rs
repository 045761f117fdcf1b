//! Terminal client of the crm service for shop staff: customers, import, new customers
//! and credit, driven from the keyboard.
//!
//! - [`api`]: the typed HTTP client (also used by the end-to-end tests);
//! - [`app`]: the state and its only mutator, `App::update`;
//! - [`ui`]: drawing of the state;
//! - [`runtime`]: the event loop tying them to the terminal and the network.

pub mod api;
pub mod app;
pub mod completion;
pub mod runtime;
pub mod ui;

#[cfg(test)]
mod snapshot_tests;

use clap::Parser;
use reqwest::Url;

/// Command line of `crm-tui`.
#[derive(Debug, Parser)]
#[command(name = "crm-tui", version, about = "Terminal client of the crm service")]
pub struct Cli {
    /// Base URL of the crm server.
    #[arg(long, env = "CRM_SERVER", default_value = "http://127.0.0.1:8000")]
    pub server: Url,
    /// Token of a server started with `--tokens`, sent as `Authorization: Bearer`.
    #[arg(long, env = "CRM_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}
