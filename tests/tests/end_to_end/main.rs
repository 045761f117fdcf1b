//! The end-to-end tests, as modules of one test binary: each file used to be a binary of
//! its own, and each one linked the whole dependency graph (warp, sled, reqwest,
//! ratatui), which cost CI minutes and gigabytes of disk. One binary still runs its
//! tests in parallel, each test against its own server and temporary data directory.
//!
//! Run one file's tests with `cargo test -p crm-tests --test end_to_end customers::`.

mod access;
mod audit;
mod backups;
mod browser;
mod browser_attacks;
mod customers;
mod database_faults;
mod disk_full;
mod drop_in;
mod durability;
mod import;
mod import_turns;
mod limits;
mod loyalty;
mod metrics;
mod openapi;
mod pages;
mod paging;
mod payments;
mod tickets;
mod transport;
mod tui;
mod two_servers;
mod upgrade;
