//! Protobuf bodies on a frontend (§5.3): what the agent and the session
//! service call so that handlers only ever see and return JSON.
//!
//! A route named in `clientProtos.json` has its client bodies decoded from
//! protobuf before dispatch; a route named in `serverProtos.json` has its
//! responses (by the request's route) encoded to protobuf — and its pushes,
//! in `SessionService` (encoded once per push, for every receiver). Every
//! other route, and every route of an app without protos, passes through
//! untouched.

use bytes::Bytes;
use tracing::warn;

use crate::protocol::{Message, Protos, encode_data_frame};

/// The JSON body of a client message, or `None` (logged) when a
/// protobuf body does not decode: the message is dropped like any other
/// undecodable one.
pub(crate) fn client_body(protos: Option<&Protos>, route: &str, body: Bytes) -> Option<Bytes> {
    let Some(protos) = protos else {
        return Some(body);
    };
    match protos.client_body_to_json(route, body) {
        Ok(json) => Some(json),
        Err(e) => {
            warn!(
                route,
                error = %e,
                "undecodable protobuf body dropped (the client's message does not match \
                 clientProtos.json for this route)"
            );
            None
        }
    }
}

/// The RESPONSE package to request `id` of `route`. A body that does not
/// fit `serverProtos.json` is logged and replaced by an empty one — what
/// Pomelo sends then — so the client still gets its answer (it decodes
/// to `{}`).
pub(crate) fn response_frame(
    protos: Option<&Protos>,
    id: u32,
    route: &str,
    body: Bytes,
) -> Option<Bytes> {
    let body = match protos {
        None => body,
        Some(protos) => protos
            .server_body_from_json(route, body)
            .unwrap_or_else(|e| {
                warn!(error = %e, "response body does not fit serverProtos.json; sending an empty body");
                Bytes::new()
            }),
    };
    match encode_data_frame(&Message::response(id, body), None) {
        Ok(frame) => Some(frame),
        Err(e) => {
            warn!(error = %e, "response not sent: cannot encode it");
            None
        }
    }
}
