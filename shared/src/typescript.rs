//! TypeScript declarations of the chat's messages for the browser client,
//! generated from the Rust types above (one source) with `ts-rs`, and a
//! test that fails when the committed file is stale.
//!
//! Regenerate after changing a type: `SHADDOCK_UPDATE_TYPES=1 cargo test
//! -p shared typescript`. The file also maps each route to its request and
//! response type and each push to its body, so a client can look them up
//! by route.

use std::path::PathBuf;

use ts_rs::{Config, TS};

use super::*;

/// Where the declarations live, from this crate's folder.
const OUT: &str = "../web-server/public/js/types/chat.d.ts";
/// Set to `1` to write the file instead of comparing.
const UPDATE_VAR: &str = "SHADDOCK_UPDATE_TYPES";

fn decl<T: TS>(out: &mut String, cfg: &Config) {
    out.push_str("export ");
    out.push_str(&T::decl(cfg));
    out.push_str("\n\n");
}

/// The whole file.
fn render() -> String {
    let cfg = Config::default();
    let mut out = String::from(
        "// Generated from shared/src/lib.rs by shared/src/typescript.rs: do not edit.\n\
         // Regenerate: SHADDOCK_UPDATE_TYPES=1 cargo test -p shared typescript\n\n",
    );
    decl::<QueryEntryRequest>(&mut out, &cfg);
    decl::<QueryEntryResponse>(&mut out, &cfg);
    decl::<EnterRequest>(&mut out, &cfg);
    decl::<EnterResponse>(&mut out, &cfg);
    decl::<SendRequest>(&mut out, &cfg);
    decl::<SendResponse>(&mut out, &cfg);
    decl::<OnChat>(&mut out, &cfg);
    decl::<OnSystem>(&mut out, &cfg);
    decl::<UserEvent>(&mut out, &cfg);
    let routes = [
        (ROUTE_QUERY_ENTRY, "QueryEntryRequest", "QueryEntryResponse"),
        (ROUTE_ENTER, "EnterRequest", "EnterResponse"),
        (ROUTE_SEND, "SendRequest", "SendResponse"),
    ];
    out.push_str("/** Request body by route. */\nexport type Requests = {\n");
    for (route, req, _) in routes {
        out.push_str(&format!("  {route:?}: {req};\n"));
    }
    out.push_str("};\n\n/** Response body by route. */\nexport type Responses = {\n");
    for (route, _, resp) in routes {
        out.push_str(&format!("  {route:?}: {resp};\n"));
    }
    out.push_str("};\n\n/** Push body by route. */\nexport type Pushes = {\n");
    for (route, body) in [
        (PUSH_CHAT, "OnChat"),
        (PUSH_ADD, "UserEvent"),
        (PUSH_LEAVE, "UserEvent"),
        (PUSH_SYSTEM, "OnSystem"),
    ] {
        out.push_str(&format!("  {route:?}: {body};\n"));
    }
    out.push_str("};\n");
    out
}

#[test]
fn typescript_declarations_are_current() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(OUT);
    let want = render();
    if std::env::var(UPDATE_VAR).is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is stale (the chat's types in shared/src/lib.rs changed): run \
         `{UPDATE_VAR}=1 cargo test -p shared typescript` and commit the file.\n\
         --- expected ---\n{want}",
        path.display()
    );
}
