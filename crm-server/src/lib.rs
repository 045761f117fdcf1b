//! The crm service: a JSON API for the chain's tills and services, HTML pages for
//! staff, all over one embedded sled store.
//!
//! Entry point: [`run`] (or [`serve`] with any [`store::Store`]).

pub mod access;
pub mod audit;
pub mod backup;
pub mod cli;
pub mod config;
pub mod connections;
pub mod customers;
pub mod error;
pub mod health;
pub mod http;
pub mod import;
pub mod imports;
pub mod loyalty;
pub mod metrics;
pub mod openapi;
pub mod pages;
pub mod payments;
pub mod recovery;
pub mod routes;
pub mod scheduler;
pub mod server;
pub mod state;
pub mod store;
pub mod tickets;

pub use config::Config;
pub use server::{run, serve, ServerError};
