//! A chat user in a terminal, over the Rust Pomelo client: gate → connector
//! → enter → send, printing every push.
//!
//! ```text
//! cargo run -p game-server --example chat_client -- [gate-url] [name] [room] [message]
//! # defaults: ws://127.0.0.1:3014 bob room1 "hello from Rust"
//! # raw TCP (as Pomelo's native clients), gate and connector: tcp://127.0.0.1:3014
//! ```
//!
//! Lines typed on stdin are sent to the room (`@name text` whispers);
//! Ctrl-D quits.

use std::sync::Arc;
use std::time::Duration;

use shaddock_client::{Client, ClientOptions};
use shared::{EnterRequest, EnterResponse, QueryEntryRequest, QueryEntryResponse, SendRequest};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let gate_url = args.next().unwrap_or_else(|| "ws://127.0.0.1:3014".into());
    let name = args.next().unwrap_or_else(|| "bob".into());
    let rid = args.next().unwrap_or_else(|| "room1".into());
    let first = args.next().unwrap_or_else(|| "hello from Rust".into());

    // 1. The gate says which connector serves this name, then we leave it.
    let gate = Client::connect(&gate_url, ClientOptions::default()).await?;
    let entry: QueryEntryResponse = gate
        .request(
            shared::ROUTE_QUERY_ENTRY,
            &QueryEntryRequest { uid: name.clone() },
        )
        .await?;
    gate.close().await;
    let (Some(host), Some(port)) = (entry.host, entry.port) else {
        anyhow::bail!("the gate has no connector for {name} (code {})", entry.code);
    };

    // 2. Enter the room on that connector.
    // The connector over the gate's transport: `tcp://` (raw TCP, as
    // Pomelo's native clients) or `ws://`.
    let scheme = gate_url.split("://").next().unwrap_or("ws");
    let url = format!("{scheme}://{host}:{port}");
    let client = Arc::new(Client::connect(&url, ClientOptions::default()).await?);
    let enter = EnterRequest {
        username: name.clone(),
        rid: rid.clone(),
    };
    match client.request(shared::ROUTE_ENTER, &enter).await? {
        EnterResponse::Users { users } => println!("in {rid} on {host}:{port} with {users:?}"),
        EnterResponse::Invalid { message, .. } => anyhow::bail!("{message}"),
        EnterResponse::Error { .. } => {
            anyhow::bail!("{name} is already in {rid}; pick another name")
        }
    }

    // 3. Print pushes (onChat, onAdd, onLeave) as they come.
    let printer = client.clone();
    tokio::spawn(async move {
        while let Some(push) = printer.next_push().await {
            println!("<{}> {}", push.route, String::from_utf8_lossy(&push.body));
        }
        println!("disconnected");
    });

    // 4. Send: the first message, then stdin lines.
    let send = |content: String, target: String| SendRequest {
        rid: rid.clone(),
        content,
        from: name.clone(),
        target,
    };
    let _: serde_json::Value = client
        .request(shared::ROUTE_SEND, &send(first, "*".into()))
        .await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let (target, text) = match line.strip_prefix('@').and_then(|l| l.split_once(' ')) {
            Some((who, text)) => (who.to_string(), text.to_string()),
            None => (shared::TARGET_ALL.to_string(), line),
        };
        let resp: serde_json::Value = client
            .request(shared::ROUTE_SEND, &send(text, target))
            .await?;
        if resp.get("code").is_some() {
            println!("not delivered: {resp}");
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    client.close().await;
    Ok(())
}
