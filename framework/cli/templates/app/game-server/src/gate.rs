//! `gate.gateHandler`: hands each user a connector.

use shaddock::app::App;
use shaddock::handler::HandlerError;
use shaddock::hash::dispatch_index;
use shaddock::session::Session;
use shared::{QueryEntryRequest, QueryEntryResponse};

/// `gate.gateHandler.queryEntry {uid}` → `{code: 200, host, port}` of the
/// connector `|crc32(uid)| mod n`. The list is the live one: connectors
/// added with `shaddock add` get users at once.
pub async fn query_entry(
    app: App,
    _session: Session,
    req: QueryEntryRequest,
) -> Result<QueryEntryResponse, HandlerError> {
    let connectors = app.cluster().servers().by_type("connector");
    let chosen = (!req.uid.is_empty())
        .then(|| dispatch_index(&req.uid, connectors.len()))
        .flatten()
        .map(|i| &connectors[i]);
    Ok(match chosen {
        Some(c) => QueryEntryResponse {
            code: 200,
            host: Some(c.host.clone()),
            port: c.client_port,
        },
        None => QueryEntryResponse {
            code: 500,
            host: None,
            port: None,
        },
    })
}
