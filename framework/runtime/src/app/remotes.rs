//! The app's typed remotes: generated tonic services, registered per server
//! type and built from the running [`App`] when its RPC server starts.

use std::collections::HashMap;
use std::sync::Arc;

use tonic::service::Routes;

use super::App;
use crate::cluster::RemoteService;

type Factory = Arc<dyn Fn(&App, Routes) -> Routes + Send + Sync>;

/// User remotes (typed tonic services) registered per server type:
/// `remotes.add("chat", ChatRemoteServer::new(ChatRemote))`, or, when the
/// implementation needs the running app (its channels, its rpc),
/// `remotes.add_with("chat", |app| ChatRemoteServer::new(ChatRemote { app: app.clone() }))`.
#[derive(Clone, Default)]
pub struct Remotes {
    by_type: HashMap<String, Vec<Factory>>,
}

impl std::fmt::Debug for Remotes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remotes")
            .field("types", &self.by_type.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Remotes {
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `svc` on every server of `server_type`.
    pub fn add<S: RemoteService>(&mut self, server_type: impl Into<String>, svc: S) -> &mut Self {
        self.add_with(server_type, move |_| svc.clone())
    }

    /// Serves the service `make(app)` builds when the server starts.
    pub fn add_with<S: RemoteService>(
        &mut self,
        server_type: impl Into<String>,
        make: impl Fn(&App) -> S + Send + Sync + 'static,
    ) -> &mut Self {
        let factory: Factory = Arc::new(move |app, routes| routes.add_service(make(app)));
        self.by_type
            .entry(server_type.into())
            .or_default()
            .push(factory);
        self
    }

    /// The routes of `app`'s server type (empty if it has no remotes).
    pub fn routes_for(&self, app: &App) -> Routes {
        let mut routes = Routes::default();
        for factory in self.by_type.get(app.server_type()).into_iter().flatten() {
            routes = factory(app, routes);
        }
        routes
    }
}
