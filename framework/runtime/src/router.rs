//! Routers: which server of a type handles a request or a remote call.
//!
//! Pomelo's default (§6.2) hashes the session's uid with its signed crc32
//! and takes `|hash| mod n` over the type's servers. We keep servers in
//! servers.json order so the choice is deterministic across processes. An
//! app registers its own router per server type (chatofpomelo routes `chat`
//! by the room id it stored in the session settings).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use crate::config::ServerInfo;
use crate::discovery::Servers;
use crate::error::ClusterError;
use crate::hash::dispatch_index;
use crate::session::SessionSnapshot;

/// What a router sees about the call it places.
#[derive(Debug, Clone, Copy)]
pub struct RouteContext<'a> {
    /// The server type being routed to.
    pub server_type: &'a str,
    /// The route key: the session's uid (or `""`) for a forwarded request,
    /// the caller's key for a remote call.
    pub key: &'a str,
    /// The session of a forwarded client request (None for remote calls).
    pub session: Option<&'a SessionSnapshot>,
    /// The client route of a forwarded request.
    pub route: Option<&'a str>,
}

impl<'a> RouteContext<'a> {
    /// A setting of the forwarded session, as a string when it is one.
    pub fn session_setting(&self, name: &str) -> Option<&'a str> {
        self.session?.settings.get(name).and_then(Value::as_str)
    }
}

/// Picks one of `servers` (the type's servers, in servers.json order, never
/// empty) and returns its **index**. An `Err` explains why no server fits.
pub trait Router: Send + Sync + 'static {
    fn route(&self, ctx: &RouteContext<'_>, servers: &[ServerInfo]) -> Result<usize, String>;
}

impl<F> Router for F
where
    F: Fn(&RouteContext<'_>, &[ServerInfo]) -> Result<usize, String> + Send + Sync + 'static,
{
    fn route(&self, ctx: &RouteContext<'_>, servers: &[ServerInfo]) -> Result<usize, String> {
        self(ctx, servers)
    }
}

/// Pomelo's default router: `|crc32(key)| mod n`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Crc32Router;

impl Router for Crc32Router {
    fn route(&self, ctx: &RouteContext<'_>, servers: &[ServerInfo]) -> Result<usize, String> {
        dispatch_index(ctx.key, servers.len()).ok_or_else(|| "no servers".to_string())
    }
}

/// Routers per server type, with a default for the others (Pomelo's
/// `app.route(type, fn)` and the `'default'` key).
#[derive(Clone)]
pub struct Routers {
    default: Arc<dyn Router>,
    by_type: HashMap<String, Arc<dyn Router>>,
}

impl Default for Routers {
    fn default() -> Self {
        Routers {
            default: Arc::new(Crc32Router),
            by_type: HashMap::new(),
        }
    }
}

impl std::fmt::Debug for Routers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routers")
            .field("types", &self.by_type.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Routers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the router of one server type.
    pub fn set(&mut self, server_type: impl Into<String>, router: impl Router) -> &mut Self {
        self.by_type.insert(server_type.into(), Arc::new(router));
        self
    }

    /// Replaces the router used for types without their own.
    pub fn set_default(&mut self, router: impl Router) -> &mut Self {
        self.default = Arc::new(router);
        self
    }

    /// The router for a type (its own or the default).
    pub fn get(&self, server_type: &str) -> &dyn Router {
        self.by_type
            .get(server_type)
            .map(|r| r.as_ref())
            .unwrap_or(self.default.as_ref())
    }

    /// Picks a server of `ctx.server_type` from the current list; returns its id.
    pub fn pick(&self, servers: &Servers, ctx: &RouteContext<'_>) -> Result<String, ClusterError> {
        let snapshot = servers.snapshot();
        let candidates = snapshot.of_type(ctx.server_type);
        if candidates.is_empty() {
            return Err(ClusterError::NoServerOfType(ctx.server_type.to_string()));
        }
        let index = self
            .get(ctx.server_type)
            .route(ctx, candidates)
            .map_err(|reason| ClusterError::Route {
                server_type: ctx.server_type.to_string(),
                reason,
            })?;
        candidates
            .get(index)
            .map(|s| s.id.clone())
            .ok_or_else(|| ClusterError::Route {
                server_type: ctx.server_type.to_string(),
                reason: format!("router returned index {index} but there are fewer servers"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(id: &str, ty: &str) -> ServerInfo {
        ServerInfo {
            id: id.into(),
            server_type: ty.into(),
            host: "127.0.0.1".into(),
            port: Some(1),
            client_port: None,
            frontend: false,
            max_connections: None,
            auto_restart: None,
            args: vec![],
        }
    }

    fn ctx<'a>(ty: &'a str, key: &'a str) -> RouteContext<'a> {
        RouteContext {
            server_type: ty,
            key,
            session: None,
            route: None,
        }
    }

    /// §11.17: keys → index with n = 3, servers in servers.json order.
    #[test]
    fn default_router_matches_pomelo_table() {
        let servers = Servers::new(vec![
            server("gate-server-1", "gate"),
            server("chat-server-1", "chat"),
            server("chat-server-2", "chat"),
            server("chat-server-3", "chat"),
        ]);
        let routers = Routers::new();
        let table = [
            ("hello", "chat-server-2"),
            ("alice", "chat-server-3"),
            ("bob", "chat-server-3"),
            ("room1", "chat-server-3"),
            ("lobby", "chat-server-3"),
            ("中文", "chat-server-1"),
            ("", "chat-server-1"),
        ];
        for (key, want) in table {
            let got = routers.pick(&servers, &ctx("chat", key)).unwrap();
            assert_eq!(got, want, "key {key:?}");
        }
    }

    #[test]
    fn closure_router_and_errors() {
        let servers = Servers::new(vec![server("a-1", "a"), server("a-2", "a")]);
        let mut routers = Routers::new();
        routers.set("a", |c: &RouteContext<'_>, _: &[ServerInfo]| {
            if c.key == "bad" {
                Err("bad key".to_string())
            } else if c.key == "far" {
                Ok(7)
            } else {
                Ok(1)
            }
        });
        assert_eq!(routers.pick(&servers, &ctx("a", "x")).unwrap(), "a-2");
        let err = routers.pick(&servers, &ctx("a", "bad")).unwrap_err();
        assert!(err.to_string().contains("bad key"), "{err}");
        let err = routers.pick(&servers, &ctx("a", "far")).unwrap_err();
        assert!(err.to_string().contains("index 7"), "{err}");
        let err = routers.pick(&servers, &ctx("nope", "x")).unwrap_err();
        assert!(matches!(err, ClusterError::NoServerOfType(t) if t == "nope"));
    }

    #[test]
    fn server_list_updates_are_seen() {
        let servers = Servers::new(vec![server("a-1", "a")]);
        let routers = Routers::new();
        assert_eq!(routers.pick(&servers, &ctx("a", "bob")).unwrap(), "a-1");
        servers.replace(vec![
            server("a-1", "a"),
            server("a-2", "a"),
            server("a-3", "a"),
        ]);
        assert_eq!(routers.pick(&servers, &ctx("a", "bob")).unwrap(), "a-3");
    }
}
