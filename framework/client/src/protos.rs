//! Protobuf bodies on the client side (§5.3): the protos a server
//! announced, cached by version across connections as the browser client
//! caches them in `localStorage`.

use std::sync::{Arc, Mutex};

use serde_json::Value;
use shaddock_protocol::Protos;
use shaddock_protocol::handshake::HandshakeResponse;

use crate::lock;

/// The last protos a server sent, shared by every connection made with
/// clones of the same [`ClientOptions`](crate::ClientOptions): a client
/// that got them from the gate sends their version to the connector, which
/// then leaves them out of its handshake.
#[derive(Debug, Clone, Default)]
pub struct ProtoCache(Arc<Mutex<Option<Arc<Protos>>>>);

impl ProtoCache {
    /// What the handshake's `sys.protoVersion` says: the cached version,
    /// or `0` (Pomelo's clients' "none yet").
    pub fn version(&self) -> Value {
        match &*lock(&self.0) {
            Some(p) => Value::from(p.version()),
            None => Value::from(0),
        }
    }

    /// The protos cached now.
    pub fn get(&self) -> Option<Arc<Protos>> {
        lock(&self.0).clone()
    }

    /// The protos a connection uses after `reply`: none when the server
    /// does not use protobuf (`useProto` absent — unlike the browser
    /// client, which keeps using a cached copy there), the ones it sent
    /// (cached for next time), or the cached ones when it left them out
    /// because the client already had that version.
    pub(crate) fn after_handshake(
        &self,
        reply: &HandshakeResponse,
    ) -> Result<Option<Arc<Protos>>, String> {
        if reply.sys.use_proto != Some(true) {
            return Ok(None);
        }
        match &reply.sys.protos {
            Some(announced) => {
                let protos = Protos::from_handshake(announced)
                    .map_err(|e| format!("the server's protos do not parse: {e}"))?;
                let protos = Arc::new(protos);
                *lock(&self.0) = Some(protos.clone());
                Ok(Some(protos))
            }
            None => self.get().map(Some).ok_or_else(|| {
                "the server uses protobuf but sent no protos, and none are cached".to_owned()
            }),
        }
    }
}
