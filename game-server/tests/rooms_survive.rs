//! Rooms survive crashes: real `game-server` processes (1 gate, 2
//! connectors, 3 chat servers, static discovery), real clients.
//!
//! * A chat server is killed with SIGKILL and started again (what the
//!   master's auto-restart does): it comes back empty and rebuilds its
//!   rooms from the connectors' records; every member hears every message
//!   again at once, and a newcomer sees the true member list.
//! * A connector is killed and started again: the rooms drop its users
//!   (their room-mates get `onLeave`, a newcomer does not see them), and
//!   when those users log in again everyone chats.
//!
//! Membership changes (add, stop, reload) need the master; they are tested
//! in framework/cli/tests.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use shaddock::router::RendezvousRouter;
use support::Topo;
use support::chat::{User, WAIT, enter};

/// Users per room and rooms.
const ROOMS: usize = 4;
const PER_ROOM: usize = 3;

fn room_name(i: usize) -> String {
    format!("room_{i}")
}

/// Every user sends one message tagged `tag`; every member of each room
/// must receive exactly its room's messages (and no other room's).
async fn all_hear_all(users: &[User], tag: &str) {
    for u in users {
        let reply = u.send(&format!("{tag}|{}|{}", u.rid, u.name), "*").await;
        assert!(
            reply.get("code").is_none(),
            "{} could not send in {}: {reply}",
            u.name,
            u.rid
        );
    }
    for u in users {
        let expected: BTreeSet<String> = users
            .iter()
            .filter(|o| o.rid == u.rid)
            .map(|o| format!("{tag}|{}|{}", o.rid, o.name))
            .collect();
        let mut got = BTreeSet::new();
        let deadline = Instant::now() + WAIT;
        while got != expected {
            let left = deadline.saturating_duration_since(Instant::now());
            let push = u.client.next_push_timeout(left).await.unwrap_or_else(|e| {
                panic!(
                    "{} in {} heard {:?} of {:?}: {e}",
                    u.name, u.rid, got, expected
                )
            });
            if push.route != shared::PUSH_CHAT {
                continue; // onAdd / onLeave
            }
            let body: serde_json::Value = push.json().expect("JSON onChat");
            let msg = body["msg"].as_str().unwrap_or_default().to_string();
            if !msg.starts_with(&format!("{tag}|")) {
                continue; // an earlier round's straggler cannot exist; be strict below
            }
            assert!(
                expected.contains(&msg),
                "{} in {} got another room's message {msg}",
                u.name,
                u.rid
            );
            assert!(got.insert(msg.clone()), "{} got {msg} twice", u.name);
        }
    }
}

/// Logs `PER_ROOM` users into each of `ROOMS` rooms.
async fn populate(cluster: &support::ProcCluster) -> Vec<User> {
    let mut users = Vec::new();
    for r in 0..ROOMS {
        for k in 0..PER_ROOM {
            let (user, _) = enter(cluster, &format!("u{r}x{k}"), &room_name(r)).await;
            users.push(user);
        }
    }
    users
}

/// The rooms each chat server owns (rendezvous over the chat servers).
fn rooms_by_owner(cluster: &support::ProcCluster) -> BTreeMap<String, Vec<String>> {
    let chats: Vec<_> = cluster.of_type("chat").into_iter().cloned().collect();
    let mut owners: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in 0..ROOMS {
        let rid = room_name(r);
        let i = RendezvousRouter::owner(&rid, &chats).unwrap();
        owners.entry(chats[i].id.clone()).or_default().push(rid);
    }
    owners
}

/// A newcomer in `rid` is told exactly `expected` + itself.
async fn newcomer_sees(
    cluster: &support::ProcCluster,
    name: &str,
    rid: &str,
    expected: &[&User],
) -> User {
    let (user, names) = enter(cluster, name, rid).await;
    let got: BTreeSet<String> = names.into_iter().collect();
    let mut want: BTreeSet<String> = expected.iter().map(|u| u.name.clone()).collect();
    want.insert(name.to_string());
    assert_eq!(got, want, "member list of {rid} told to {name}");
    user
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_chat_server_rebuilds_its_rooms_from_the_connectors() {
    let mut cluster = support::start(Topo::new(2, 3)).await;
    let users = populate(&cluster).await;
    all_hear_all(&users, "before").await;

    // The chat server owning the most rooms crashes and is restarted.
    let owners = rooms_by_owner(&cluster);
    let (victim, lost_rooms) = owners
        .iter()
        .max_by_key(|(_, rooms)| rooms.len())
        .map(|(id, rooms)| (id.clone(), rooms.clone()))
        .unwrap();
    cluster.kill(&victim);
    cluster.restart(&victim).await;
    let up = Instant::now();
    // Messages sent right after the restart reach every member: the rooms
    // were rebuilt (or the sends waited for the rebuild).
    all_hear_all(&users, "after").await;
    let recovered = up.elapsed();
    assert!(
        cluster
            .wait_log_line(&victim, &["sharded channels reconciled"], WAIT)
            .await,
        "{victim} logged its rebuild"
    );
    println!(
        "{victim} owned {lost_rooms:?}; every member heard a round of messages {recovered:?} after its restart"
    );
    assert!(
        recovered < Duration::from_secs(2) + WAIT / 5,
        "rooms whole again within the bound: {recovered:?}"
    );
    // A newcomer to a rebuilt room sees exactly the users really there.
    let rid = &lost_rooms[0];
    let members: Vec<&User> = users.iter().filter(|u| &u.rid == rid).collect();
    let _newcomer = newcomer_sees(&cluster, "newcomer", rid, &members).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_connector_takes_its_users_out_of_the_rooms() {
    let mut cluster = support::start(Topo::new(2, 3)).await;
    let users = populate(&cluster).await;
    all_hear_all(&users, "before").await;

    let doomed_port = cluster.server("connector-server-1").client_port.unwrap();
    let (gone, stayed): (Vec<User>, Vec<User>) =
        users.into_iter().partition(|u| u.port == doomed_port);
    assert!(
        !gone.is_empty() && !stayed.is_empty(),
        "users on both connectors"
    );
    cluster.kill("connector-server-1");
    cluster.restart("connector-server-1").await;

    // Each remaining user hears `onLeave` for every room-mate that was on
    // the dead connector.
    for u in &stayed {
        let mut expected: BTreeSet<String> = gone
            .iter()
            .filter(|g| g.rid == u.rid)
            .map(|g| g.name.clone())
            .collect();
        let deadline = Instant::now() + WAIT;
        while !expected.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let push = u.client.next_push_timeout(left).await.unwrap_or_else(|e| {
                panic!("{} still expects onLeave for {expected:?}: {e}", u.name)
            });
            if push.route == shared::PUSH_LEAVE {
                let body: serde_json::Value = push.json().unwrap();
                expected.remove(body["user"].as_str().unwrap_or_default());
            }
        }
    }
    // No ghosts: a newcomer in each room sees only the users still there.
    for r in 0..ROOMS {
        let rid = room_name(r);
        let there: Vec<&User> = stayed.iter().filter(|u| u.rid == rid).collect();
        let newcomer = newcomer_sees(&cluster, &format!("new{r}"), &rid, &there).await;
        newcomer.client.close().await;
    }
    // The users of the dead connector log in again, as clients do, and
    // everyone chats.
    let mut users = stayed;
    for g in &gone {
        let (user, _) = enter(&cluster, &g.name, &g.rid).await;
        users.push(user);
    }
    all_hear_all(&users, "again").await;
}
