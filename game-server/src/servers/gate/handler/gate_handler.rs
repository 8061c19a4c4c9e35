//! `gate.gateHandler`: tells a client which connector to use.

use shaddock::app::App;
use shaddock::handler::HandlerError;
use shaddock::hash::dispatch_index;
use shaddock::session::Session;
use shared::{QueryEntryRequest, QueryEntryResponse};

/// `gate.gateHandler.queryEntry {uid}` → `{code: 200, host, port}` of the
/// connector `|crc32(uid)| mod n`, or `{code: 500}` without uid or connectors.
/// Connectors an operator drained (`shaddock drain`) are not counted.
pub async fn query_entry(
    app: App,
    _session: Session,
    msg: QueryEntryRequest,
) -> Result<QueryEntryResponse, HandlerError> {
    let fail = QueryEntryResponse {
        code: 500,
        host: None,
        port: None,
    };
    if msg.uid.is_empty() {
        return Ok(fail);
    }
    let connectors = app.cluster().servers().accepting("connector");
    let Some(chosen) = dispatch_index(&msg.uid, connectors.len()).map(|i| &connectors[i]) else {
        return Ok(fail);
    };
    Ok(QueryEntryResponse {
        code: 200,
        host: Some(chosen.client_host().to_owned()),
        port: chosen.client_port,
    })
}
