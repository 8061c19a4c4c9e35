//! Every server of the app in one binary, started once per server of
//! `config/servers.json` (`shaddock start` does it for you):
//!
//! `game-server --env development --server-id room-server-1`
//!
//! Code follows Pomelo's layout: `servers/<type>/handler/*` for client
//! routes (`<type>.<handler>.<method>`), `servers/<type>/remote/*` for RPCs
//! between servers (`proto/<type>.proto`).
//!
//! * `gate`: tells a client which connector to use;
//! * `connector`: holds the client connections, logs users into rooms;
//! * `room`: the rooms; runs `room.roomHandler.say` for the connectors and
//!   serves the `RoomRemote` of `proto/room.proto`.

mod servers {
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
    pub mod room {
        pub mod handler {
            pub mod room_handler;
        }
        pub mod remote {
            pub mod room_remote;
        }
    }
}

/// Generated from `proto/room.proto`: messages, the `RoomRemote` server
/// stub and its typed caller `proto::rpc::RoomRemote`.
mod proto {
    shaddock::include_remotes!("room");
}

use std::time::Duration;

use proto::room_remote_server::RoomRemoteServer;
use servers::room::{handler::room_handler, remote::room_remote::RoomRemote};
use servers::{connector::handler::entry_handler, gate::handler::gate_handler};
use shaddock::config::ServerInfo;
use shaddock::connector::ConnectorOptions;
use shaddock::router::RouteContext;

fn main() -> std::process::ExitCode {
    shaddock::launch::run(|app| {
        app.handler(shared::ROUTE_QUERY_ENTRY, gate_handler::query_entry)
            .handler(shared::ROUTE_ENTER, entry_handler::enter)
            .handler(shared::ROUTE_SAY, room_handler::say)
            .route("room", by_room)
            .remote("room", |app| RoomRemoteServer::new(RoomRemote::new(app)))
            .connector(
                "connector",
                ConnectorOptions {
                    heartbeat: Some(Duration::from_secs(10)),
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

/// `app.route('room', ...)`: a room lives on room server `|crc32(rid)| mod n`.
/// Client requests carry the room in the session's `rid`; remote calls pass
/// it as the route key.
fn by_room(ctx: &RouteContext<'_>, servers: &[ServerInfo]) -> Result<usize, String> {
    let rid = match ctx.session {
        Some(_) => ctx.session_setting("rid").unwrap_or_default(),
        None => ctx.key,
    };
    shaddock::hash::dispatch_index(rid, servers.len()).ok_or_else(|| "no room server".into())
}
