//! Both protos files and their version: what a server encodes and decodes
//! with, and what its handshake announces (`sys.protos`, §4.2).

use base64::Engine;
use bytes::Bytes;
use md5::{Digest, Md5};
use serde_json::{Map, Value};

use super::{ProtobufError, Schema, SchemaError};

/// The server's protos (`serverProtos.json`: bodies the server sends) and
/// the client's (`clientProtos.json`: bodies clients send), with Pomelo's
/// version string.
#[derive(Debug, Clone, Default)]
pub struct Protos {
    pub server: Schema,
    pub client: Schema,
    version: String,
    /// `{"server":…,"client":…,"version":…}`, built once: every handshake
    /// that carries it serializes the same value.
    announcement: Value,
}

impl Protos {
    /// From the two files' JSON (either may be absent: `{}`, as in Pomelo).
    pub fn from_sources(server: Option<&Value>, client: Option<&Value>) -> Result<Self, String> {
        let parse = |file: &str, v: Option<&Value>| match v {
            Some(v) => Schema::parse(v).map_err(|e| format!("{file}: {e}")),
            None => Ok(Schema::default()),
        };
        Ok(Self::new(
            parse("serverProtos.json", server)?,
            parse("clientProtos.json", client)?,
        ))
    }

    /// What a client rebuilds from a handshake's `sys.protos`; the
    /// version is taken as the server sent it.
    pub fn from_handshake(protos: &Value) -> Result<Self, SchemaError> {
        let part = |key: &str| match protos.get(key) {
            Some(v) => Schema::from_pomelo_json(v),
            None => Ok(Schema::default()),
        };
        let mut built = Self::new(part("server")?, part("client")?);
        if let Some(Value::String(v)) = protos.get("version") {
            built.version = v.clone();
            built.announcement["version"] = Value::from(v.clone());
        }
        Ok(built)
    }

    fn new(server: Schema, client: Schema) -> Self {
        let (server_json, client_json) = (server.pomelo_json(), client.pomelo_json());
        // Pomelo: base64(md5(JSON(client) + JSON(server))).
        let mut text = serde_json::to_vec(&client_json).unwrap_or_default();
        text.extend(serde_json::to_vec(&server_json).unwrap_or_default());
        let version = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&text));
        let mut announcement = Map::new();
        announcement.insert("server".into(), server_json);
        announcement.insert("client".into(), client_json);
        announcement.insert("version".into(), Value::from(version.clone()));
        Protos {
            server,
            client,
            version,
            announcement: Value::Object(announcement),
        }
    }

    /// `protos.version` of the handshake; clients send it back as
    /// `sys.protoVersion` to skip the protos next time.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The handshake's `sys.protos` object.
    pub fn announcement(&self) -> &Value {
        &self.announcement
    }

    /// Whether a client that sent `proto_version` (its `sys.protoVersion`)
    /// lacks these protos. As Pomelo: anything but the same version string
    /// (missing, `0`, another string, a number) gets them.
    pub fn client_needs(&self, proto_version: Option<&Value>) -> bool {
        !matches!(proto_version, Some(Value::String(v)) if *v == self.version)
    }

    // The four directions a body travels. Each is the identity for a route
    // without a schema (JSON, §5.3's codec selection), so callers need no
    // second branch.

    /// Server side, a client's REQUEST/NOTIFY body → JSON.
    pub fn client_body_to_json(&self, route: &str, body: Bytes) -> Result<Bytes, ProtobufError> {
        transcode(&self.client, route, body, Schema::decode_json)
    }

    /// Server side, a RESPONSE (by its request's route) or PUSH body in
    /// JSON → what the wire carries.
    pub fn server_body_from_json(&self, route: &str, body: Bytes) -> Result<Bytes, ProtobufError> {
        transcode(&self.server, route, body, Schema::encode_json)
    }

    /// Client side, a REQUEST/NOTIFY body in JSON → what the wire carries.
    pub fn client_body_from_json(&self, route: &str, body: Bytes) -> Result<Bytes, ProtobufError> {
        transcode(&self.client, route, body, Schema::encode_json)
    }

    /// Client side, a RESPONSE or PUSH body from the wire → JSON.
    pub fn server_body_to_json(&self, route: &str, body: Bytes) -> Result<Bytes, ProtobufError> {
        transcode(&self.server, route, body, Schema::decode_json)
    }
}

/// `Schema::encode_json` or `Schema::decode_json`.
type Convert = fn(&Schema, &str, &[u8]) -> Result<Vec<u8>, ProtobufError>;

fn transcode(
    schema: &Schema,
    route: &str,
    body: Bytes,
    with: Convert,
) -> Result<Bytes, ProtobufError> {
    if schema.has_route(route) {
        with(schema, route, &body).map(Bytes::from)
    } else {
        Ok(body)
    }
}
