//! The state every route module is given ([`AppState`]): its own module, so that the
//! route modules and `routes.rs`, which assembles them, do not import each other.

use std::sync::Arc;

use crate::access::Access;
use crate::config::Config;
use crate::imports::ImportTracker;
use crate::scheduler::Upstream;

/// What every handler is given: the store, the settings, the other services and the
/// imports under way.
pub struct AppState<S> {
    pub store: S,
    pub config: Arc<Config>,
    pub upstream: Arc<Upstream>,
    pub imports: Arc<ImportTracker>,
    pub access: Arc<Access>,
}

impl<S> AppState<S> {
    pub fn new(store: S, config: Config) -> AppState<S> {
        AppState {
            upstream: Arc::new(Upstream::new(&config)),
            imports: Arc::default(),
            access: Arc::new(Access::new(&config)),
            store,
            config: Arc::new(config),
        }
    }
}

impl<S: crate::store::AuditStore + Clone> AppState<S> {
    /// This state with its store acting for `origin`: the writes its handlers make are
    /// recorded in the audit trail under that actor and route.
    pub fn acting_for(&self, origin: crm_model::audit::WriteOrigin) -> AppState<S> {
        AppState {
            store: self.store.acting_for(origin),
            ..self.clone()
        }
    }
}

impl<S: Clone> Clone for AppState<S> {
    fn clone(&self) -> Self {
        AppState {
            store: self.store.clone(),
            config: self.config.clone(),
            upstream: self.upstream.clone(),
            imports: self.imports.clone(),
            access: self.access.clone(),
        }
    }
}
