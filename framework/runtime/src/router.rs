//! Routers: which server of a type handles a request or a remote call.
//!
//! Pomelo's default (§6.2) hashes the session's uid with its signed crc32
//! and takes `|hash| mod n` over the type's servers. We keep servers in
//! servers.json order so the choice is deterministic across processes. An
//! app registers its own router per server type (chatofpomelo routes `chat`
//! by the room id it stored in the session settings).
//!
//! [`Crc32Router`] is Pomelo's placement, kept for compatibility;
//! [`RendezvousRouter`] is the one to use for state that lives on a server
//! (rooms): when a server joins or leaves, it moves about 1/n of the keys
//! instead of most of them.

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

/// Placement that moves little: rendezvous (highest-random-weight) hashing.
///
/// Every server of the type gets a score `hash(key, server id)`; the key
/// goes to the highest. Adding one of n servers moves only the keys the
/// newcomer now wins (about 1/(n+1) of them); removing one moves only its
/// own keys (about 1/n). Pomelo's `crc32 mod n` moves about (n-1)/n on any
/// change, which is what splits rooms when a server joins or leaves.
///
/// The score depends on the key and the server *id* only — not on list
/// order — so every process computes the same owner from the same set of
/// servers. The hash is FNV-1a 64 over `key`, a 0 byte and `id`, finished
/// with splitmix64's mixer: a fixed, documented function (std's hasher may
/// change between Rust releases, and servers built by different compilers
/// must agree). n is small (servers of one type), so scoring all of them is
/// cheaper than maintaining a ring.
#[derive(Debug, Clone, Copy, Default)]
pub struct RendezvousRouter;

impl RendezvousRouter {
    /// The score of `server_id` for `key` (exposed for tests and tools).
    pub fn score(key: &str, server_id: &str) -> u64 {
        const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
        let mut h = FNV_OFFSET;
        for b in key.bytes().chain([0u8]).chain(server_id.bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(FNV_PRIME);
        }
        // splitmix64 finalizer: FNV's low bits mix poorly on their own.
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^ (h >> 31)
    }

    /// Index of the owner of `key` among `servers` (`None` when empty). Ties
    /// (equal scores) go to the smaller id, so the choice stays total.
    pub fn owner(key: &str, servers: &[ServerInfo]) -> Option<usize> {
        servers
            .iter()
            .enumerate()
            .max_by(|(_, a), (_, b)| {
                Self::score(key, &a.id)
                    .cmp(&Self::score(key, &b.id))
                    .then_with(|| b.id.cmp(&a.id))
            })
            .map(|(i, _)| i)
    }
}

impl Router for RendezvousRouter {
    fn route(&self, ctx: &RouteContext<'_>, servers: &[ServerInfo]) -> Result<usize, String> {
        Self::owner(ctx.key, servers).ok_or_else(|| "no servers".to_string())
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
            client_host: None,
            bind_host: None,
            client_bind_host: None,
            metrics_port: None,
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

    fn servers_of(ids: &[String]) -> Vec<ServerInfo> {
        ids.iter().map(|id| server(id, "chat")).collect()
    }

    fn owners(keys: &[String], servers: &[ServerInfo]) -> Vec<String> {
        keys.iter()
            .map(|k| {
                servers[RendezvousRouter::owner(k, servers).unwrap()]
                    .id
                    .clone()
            })
            .collect()
    }

    /// Keys moved when one of n servers joins ≈ 1/(n+1), when one leaves ≈
    /// 1/n, and only to / from that server; Pomelo's crc32 mod n moves most.
    #[test]
    fn rendezvous_moves_about_one_in_n_keys() {
        let keys: Vec<String> = (0..20_000).map(|i| format!("room-{i}")).collect();
        for n in [2usize, 3, 5, 8] {
            let ids: Vec<String> = (1..=n + 1).map(|i| format!("chat-server-{i}")).collect();
            let before = servers_of(&ids[..n]);
            let after = servers_of(&ids);
            let (old, new) = (owners(&keys, &before), owners(&keys, &after));
            let moved: Vec<usize> = (0..keys.len()).filter(|&i| old[i] != new[i]).collect();
            let fraction = moved.len() as f64 / keys.len() as f64;
            let expected = 1.0 / (n + 1) as f64;
            assert!(
                (fraction - expected).abs() < 0.02,
                "n={n}: adding one moved {fraction:.3} of the keys, expected ≈{expected:.3}"
            );
            // Every moved key moved to the newcomer; nothing else changed.
            assert!(moved.iter().all(|&i| new[i] == ids[n]), "n={n}");
            // Removing it again restores exactly the old placement.
            assert_eq!(owners(&keys, &before), old);
            // Balance: every server owns its share, within 10 %.
            for id in &ids {
                let share = new.iter().filter(|o| *o == id).count() as f64 / keys.len() as f64;
                assert!(
                    (share - expected).abs() < expected * 0.1,
                    "{id}: {share:.3}"
                );
            }
            let crc_moved = keys
                .iter()
                .filter(|k| dispatch_index(k, n) != dispatch_index(k, n + 1))
                .count() as f64
                / keys.len() as f64;
            assert!(crc_moved > 0.4, "n={n}: crc32 mod n moved {crc_moved:.3}");
        }
    }

    #[test]
    fn rendezvous_ignores_list_order_and_is_stable() {
        let a = vec![server("c-1", "c"), server("c-2", "c"), server("c-3", "c")];
        let b = vec![server("c-3", "c"), server("c-1", "c"), server("c-2", "c")];
        for key in ["lobby", "room1", "", "中文"] {
            let ia = RendezvousRouter::owner(key, &a).unwrap();
            let ib = RendezvousRouter::owner(key, &b).unwrap();
            assert_eq!(a[ia].id, b[ib].id, "key {key:?}");
        }
        assert_eq!(RendezvousRouter::owner("x", &[]), None);
        // A fixed function: these values must never change (servers built
        // by different compilers have to agree).
        // (Values computed independently with a Python transcription.)
        assert_eq!(RendezvousRouter::score("", ""), 0x25fc_6dd3_6ce0_4b20);
        assert_eq!(
            RendezvousRouter::score("room1", "chat-server-1"),
            0x069c_a8e4_1471_89d5
        );
    }
}
