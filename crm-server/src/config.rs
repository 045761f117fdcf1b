//! Server settings.

use std::path::PathBuf;

use crate::store::sled::DEFAULT_CACHE_BYTES;

/// Everything the server can be told at start-up.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory of the sled database.
    pub data_dir: PathBuf,
    /// Largest body of an ordinary route (the contract's 1 MiB).
    pub body_limit: u64,
    /// Largest streamed body of the import and ticket routes.
    pub stream_limit: u64,
    /// A customer with this many refused deferred payments or more is not allowed credit.
    pub refusal_limit: u32,
    /// Bound of the store's page cache, bytes.
    pub cache_bytes: u64,
}

impl Config {
    pub const DEFAULT_BODY_LIMIT: u64 = 1024 * 1024;
    pub const DEFAULT_STREAM_LIMIT: u64 = 1024 * 1024 * 1024;
    pub const DEFAULT_REFUSAL_LIMIT: u32 = 1;

    pub fn new(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            data_dir: data_dir.into(),
            body_limit: Self::DEFAULT_BODY_LIMIT,
            stream_limit: Self::DEFAULT_STREAM_LIMIT,
            refusal_limit: Self::DEFAULT_REFUSAL_LIMIT,
            cache_bytes: DEFAULT_CACHE_BYTES,
        }
    }
}
