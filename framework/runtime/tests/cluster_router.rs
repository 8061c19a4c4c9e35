//! §11.17: the default router sends keys where Pomelo's would, given the
//! servers in servers.json order.

use shaddock::cluster::Servers;
use shaddock::config::ServerInfo;
use shaddock::router::{RouteContext, Router, Routers};

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

#[test]
fn pomelo_dispatch_table_n3() {
    let servers = Servers::new(vec![
        server("connector-server-1", "connector"),
        server("chat-server-1", "chat"),
        server("connector-server-2", "connector"),
        server("chat-server-2", "chat"),
        server("connector-server-3", "connector"),
        server("chat-server-3", "chat"),
    ]);
    let routers = Routers::new();
    // key, crc32 as signed i32, index = |crc| mod 3
    let table: [(&str, i32, usize); 7] = [
        ("hello", 907060870, 1),
        ("alice", 663665735, 2),
        ("bob", -171200192, 2),
        ("room1", -462210518, 2),
        ("lobby", -857451017, 2),
        ("中文", 305094291, 0),
        ("", 0, 0),
    ];
    for (key, crc, index) in table {
        assert_eq!(shaddock::hash::crc32_pomelo(key), crc, "crc of {key:?}");
        for ty in ["connector", "chat"] {
            let ctx = RouteContext {
                server_type: ty,
                key,
                session: None,
                route: None,
            };
            let picked = routers.pick(&servers, &ctx).unwrap();
            assert_eq!(picked, format!("{ty}-server-{}", index + 1), "key {key:?}");
            let direct = shaddock::router::Crc32Router
                .route(&ctx, &servers.by_type(ty))
                .unwrap();
            assert_eq!(direct, index);
        }
    }
}
