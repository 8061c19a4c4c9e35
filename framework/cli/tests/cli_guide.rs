//! The scaffold README's guide ("Add a handler", "Add a remote"), followed
//! to the letter on a fresh `shaddock init` app, so the guide cannot rot.
//!
//! Every code block the user is told to add is preceded in the README by a
//! marker (an HTML comment, invisible when rendered):
//!
//! * `<!-- guide: file=PATH append -->`: add the block at the end of PATH,
//!   after a blank line;
//! * `<!-- guide: file=PATH after="LINE" -->`: add it right after the one
//!   line of PATH that reads LINE (leading and trailing spaces aside); a
//!   block of several lines is followed by a blank line.
//!
//! The test reads the markers from the generated README, applies the blocks
//! in order, checks the result is rustfmt-clean, builds and starts the app
//! (`shaddock start -D --debug`), enters a room through gate → connector
//! and calls the new routes: `room.roomHandler.members` (the new handler)
//! and `connector.entryHandler.peek` (a connector handler whose answer
//! only the new `RoomRemote.Members` on the room server can give). Then
//! `shaddock stop` must leave no process behind.

mod cli_support;

use std::path::Path;
use std::time::Instant;

use cli_support::scaffold::*;
use serde_json::{Value, json};
use shaddock_client::Client;

/// The routes the guide adds.
const ROUTE_MEMBERS: &str = "room.roomHandler.members";
const ROUTE_PEEK: &str = "connector.entryHandler.peek";

/// Where a block goes.
#[derive(Debug, PartialEq)]
enum Place {
    Append,
    After(String),
}

/// One code block of the guide and where it goes.
#[derive(Debug)]
struct Step {
    file: String,
    place: Place,
    code: String,
}

/// The steps of `readme`, in order.
fn guide_steps(readme: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        let Some(spec) = line.trim().strip_prefix("<!-- guide:") else {
            continue;
        };
        let spec = spec
            .strip_suffix("-->")
            .unwrap_or_else(|| panic!("guide marker is not one line: {line}"));
        let (mut file, mut place) = (None, None);
        let mut rest = spec.trim();
        while !rest.is_empty() {
            let (key, value, tail) = marker_field(rest);
            match (key, value) {
                ("file", Some(v)) => file = Some(v),
                ("append", None) => place = Some(Place::Append),
                ("after", Some(v)) => place = Some(Place::After(v)),
                _ => panic!("unknown guide marker field `{key}` in: {line}"),
            }
            rest = tail.trim_start();
        }
        let fence = lines
            .next()
            .unwrap_or_else(|| panic!("no code block after: {line}"));
        let indent = fence.len() - fence.trim_start().len();
        assert!(
            fence.trim_start().starts_with("```"),
            "a guide marker must be followed by a fenced code block: {line}"
        );
        let mut code = String::new();
        for l in lines.by_ref() {
            if l.trim() == "```" {
                break;
            }
            // As in Markdown, the fence's indentation is not part of the code.
            let spaces = l.len() - l.trim_start_matches(' ').len();
            code.push_str(&l[spaces.min(indent)..]);
            code.push('\n');
        }
        steps.push(Step {
            file: file.unwrap_or_else(|| panic!("guide marker without file=: {line}")),
            place: place.unwrap_or_else(|| panic!("guide marker without append or after=: {line}")),
            code,
        });
    }
    steps
}

/// `key`, `key=value` or `key="value with spaces"` at the start of `s`:
/// (key, value, what follows).
fn marker_field(s: &str) -> (&str, Option<String>, &str) {
    let key_end = s.find(['=', ' ']).unwrap_or(s.len());
    let (key, rest) = s.split_at(key_end);
    let Some(rest) = rest.strip_prefix('=') else {
        return (key, None, rest);
    };
    if let Some(quoted) = rest.strip_prefix('"') {
        let end = quoted
            .find('"')
            .expect("unterminated quote in guide marker");
        (key, Some(quoted[..end].to_string()), &quoted[end + 1..])
    } else {
        let end = rest.find(' ').unwrap_or(rest.len());
        (key, Some(rest[..end].to_string()), &rest[end..])
    }
}

/// Applies one step to the app in `dir`.
fn apply(dir: &Path, step: &Step) {
    let path = dir.join(&step.file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the guide edits {}, which the scaffold lacks: {e}",
            step.file
        )
    });
    let new = match &step.place {
        Place::Append => format!("{}\n\n{}", text.trim_end_matches('\n'), step.code),
        Place::After(anchor) => {
            let hits: Vec<usize> = text
                .lines()
                .enumerate()
                .filter(|(_, l)| l.trim() == anchor.trim())
                .map(|(i, _)| i)
                .collect();
            assert_eq!(
                hits.len(),
                1,
                "the guide says to add code after the line `{anchor}` of {}: found {} such lines",
                step.file,
                hits.len()
            );
            let mut out = String::new();
            for (i, line) in text.lines().enumerate() {
                out.push_str(line);
                out.push('\n');
                if i == hits[0] {
                    out.push_str(&step.code);
                    if step.code.lines().count() > 1 {
                        out.push('\n');
                    }
                }
            }
            out
        }
    };
    std::fs::write(&path, new).unwrap();
}

#[test]
fn markers_parse() {
    let readme = "x\n<!-- guide: file=a/b.rs append -->\n```rust\nfn f() {}\n```\n\
                  <!-- guide: file=p.proto after=\"service S {\" -->\n   ```proto\n     rpc M(A) returns (B);\n   ```\n";
    let steps = guide_steps(readme);
    assert_eq!(steps.len(), 2);
    assert_eq!(
        (
            steps[0].file.as_str(),
            &steps[0].place,
            steps[0].code.as_str()
        ),
        ("a/b.rs", &Place::Append, "fn f() {}\n")
    );
    assert_eq!(steps[1].place, Place::After("service S {".into()));
    assert_eq!(steps[1].code, "  rpc M(A) returns (B);\n");
}

async fn request(client: &Client, route: &str, msg: Value) -> Value {
    client
        .request(route, &msg)
        .await
        .unwrap_or_else(|e| panic!("{route}: {e}"))
}

#[test]
fn readme_guide_adds_a_working_handler_and_remote() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("guide-e2e");
    init_app(&dir);

    // --- follow the guide ---
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    for route in [ROUTE_MEMBERS, ROUTE_PEEK] {
        assert!(readme.contains(route), "the guide no longer adds {route}");
    }
    let steps = guide_steps(&readme);
    let files: Vec<&str> = steps.iter().map(|s| s.file.as_str()).collect();
    for f in [
        "shared/src/lib.rs",
        "game-server/src/main.rs",
        "game-server/src/servers/room/handler/room_handler.rs",
        "game-server/src/servers/room/remote/room_remote.rs",
        "game-server/src/servers/connector/handler/entry_handler.rs",
        "proto/room.proto",
    ] {
        assert!(files.contains(&f), "no guide step edits {f}: {files:?}");
    }
    for step in &steps {
        apply(&dir, step);
    }
    // The guide's code is formatted as `cargo fmt` wants it.
    assert_rustfmt_clean(&dir);

    // --- build, start, call the new routes ---
    prepare_for_test(&dir);
    let app = Running::start(&dir);
    eprintln!("init + guide + build + start: {:?}", started.elapsed());
    let gate = app.gate();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (alice, _) = enter(&gate, "alice", "lobby").await;
        // The new handler: runs on the room server that owns alice's room.
        let resp = request(&alice, ROUTE_MEMBERS, json!({})).await;
        assert_eq!(resp, json!({"code": 200, "users": ["alice"]}));

        // The new remote: bob, in another room, asks his connector about
        // alice's room; only the room server that owns it knows.
        let (bob, _) = enter(&gate, "bob", "garden").await;
        let resp = request(&bob, ROUTE_PEEK, json!({"rid": "lobby"})).await;
        assert_eq!(resp, json!({"code": 200, "users": ["alice"]}));
        let resp = request(&bob, ROUTE_PEEK, json!({"rid": "nowhere"})).await;
        assert_eq!(resp, json!({"code": 200, "users": []}));
        let resp = request(&bob, ROUTE_MEMBERS, json!({})).await;
        assert_eq!(resp, json!({"code": 200, "users": ["bob"]}));
        for c in [alice, bob] {
            c.close().await;
        }
    });

    // --- stop leaves nothing behind ---
    app.stop();
    eprintln!("cli_guide took {:?}", started.elapsed());
}
