//! The chat app (Pomelo's chatofpomelo): one binary for every server type,
//! started once per server of `config/servers.json`:
//!
//! `game-server --env development --server-id chat-server-1`
//!
//! Code mirrors Pomelo's layout: `servers/<type>/handler/*` for client
//! routes, `servers/<type>/remote/*` for RPCs between servers.

mod servers {
    pub mod admin {
        pub mod chat_admin;
    }
    pub mod gate {
        pub mod handler {
            pub mod gate_handler;
        }
    }
    pub mod connector {
        pub mod handler {
            pub mod entry_handler;
        }
    }
    pub mod chat {
        pub mod handler {
            pub mod chat_handler;
        }
        pub mod remote {
            pub mod chat_remote;
        }
    }
}

/// Generated from `proto/chat.proto`: messages, the `ChatRemote` server
/// stub and its typed caller `proto::rpc::ChatRemote`.
mod proto {
    shaddock::include_remotes!("chat");
}

use std::time::Duration;

use proto::chat_remote_server::ChatRemoteServer;
use servers::admin::chat_admin;
use servers::chat::handler::chat_handler;
use servers::chat::remote::chat_remote::{self, ChatRemote};
use servers::{connector::handler::entry_handler, gate::handler::gate_handler};
use shaddock::config::ServerInfo;
use shaddock::connector::ConnectorOptions;
use shaddock::router::{RendezvousRouter, RouteContext};

fn main() -> std::process::ExitCode {
    shaddock::launch::run(|app| {
        app.handler(shared::ROUTE_QUERY_ENTRY, gate_handler::query_entry)
            .handler(shared::ROUTE_ENTER, entry_handler::enter)
            .handler(shared::ROUTE_SEND, chat_handler::send)
            .route("chat", by_room)
            .remote("chat", |app| ChatRemoteServer::new(ChatRemote::new(app)))
            // Rooms are state owned by key: rebuilt on their chat server
            // after a crash, moved when chat servers come and go.
            .shard("chat")
            .on_member_lost(chat_remote::member_lost)
            // Session resume after a connector crash: the restored session
            // gets back the listener that makes it leave its room.
            .on_session_restored(entry_handler::session_restored)
            // Operators' actions on rooms (`shaddock broadcast`,
            // `close-room`); kick and drain are the framework's.
            .admin_action("broadcast", chat_admin::broadcast)
            .admin_action("close-room", chat_admin::close_room)
            .admin_query("rooms", chat_admin::rooms)
            .connector(
                "connector",
                ConnectorOptions {
                    heartbeat: Some(Duration::from_secs(3)),
                    use_dict: true,
                    ..Default::default()
                },
            )
            .connector(
                "gate",
                ConnectorOptions {
                    heartbeat: None,
                    use_dict: false,
                    ..Default::default()
                },
            )
    })
}

/// `app.route('chat', ...)`: a room lives on the chat server rendezvous
/// hashing picks for its id, so adding or removing one of n chat servers
/// moves about 1/n of the rooms (Pomelo's `crc32 mod n` moves most of them).
/// Client requests carry the room in the session's `rid`; remote calls and
/// the shard keeper pass it as the route key.
fn by_room(ctx: &RouteContext<'_>, servers: &[ServerInfo]) -> Result<usize, String> {
    let rid = match ctx.session {
        Some(_) => ctx.session_setting("rid").unwrap_or_default(),
        None => ctx.key,
    };
    RendezvousRouter::owner(rid, servers).ok_or_else(|| "no chat server".into())
}
