//! Every server of the app in one binary, started once per server of
//! `config/servers.json` (`shaddock start` does it for you):
//!
//! `game-server --env development --server-id room-server-1`
//!
//! * `gate`: tells a client which connector to use (`gate.rs`);
//! * `connector`: holds the client connections, logs users into rooms
//!   (`connector.rs`);
//! * `room`: the rooms; runs `room.roomHandler.say` for the connectors and
//!   serves the `RoomRemote` of `proto/room.proto` (`room.rs`).

mod connector;
mod gate;
mod room;

/// Generated from `proto/room.proto`: messages, the `RoomRemote` server
/// stub and its typed caller `proto::rpc::RoomRemote`.
mod proto {
    shaddock::include_remotes!("room");
}

use std::time::Duration;

use shaddock::connector::ConnectorOptions;

fn main() -> std::process::ExitCode {
    shaddock::launch::run(|app| {
        app.handler(shared::ROUTE_QUERY_ENTRY, gate::query_entry)
            .handler(shared::ROUTE_ENTER, connector::enter)
            .handler(shared::ROUTE_SAY, room::say)
            // A room lives on one room server: route by room id.
            .route("room", room::by_room)
            .remote("room", |app| {
                proto::room_remote_server::RoomRemoteServer::new(room::RoomRemote::new(app))
            })
            .connector(
                "gate",
                ConnectorOptions {
                    heartbeat: None,
                    use_dict: false,
                    ..Default::default()
                },
            )
            .connector(
                "connector",
                ConnectorOptions {
                    heartbeat: Some(Duration::from_secs(10)),
                    ..Default::default()
                },
            )
    })
}
