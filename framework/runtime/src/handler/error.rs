//! Handler errors and their §5.5 mapping to a response body.

use bytes::Bytes;
use serde_json::{Map, Value};

/// Body of the generic error response (§5.5).
pub use crate::protocol::CODE_500;

/// A failed handler or filter. The client sees `{"code":500}`, or the given
/// body with `code` set to 500 unless it already has one (Pomelo's
/// `next(err, resp)`); `message` only goes to the log.
#[derive(Debug, Clone)]
pub struct HandlerError {
    message: String,
    body: Option<Map<String, Value>>,
}

impl HandlerError {
    /// An error answered with `{"code":500}`.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            body: None,
        }
    }

    /// An error answered with `body` (a JSON object; `code` defaults to 500).
    /// A non-object body is answered with `{"code":500}`.
    pub fn with_body(message: impl Into<String>, body: Value) -> Self {
        Self {
            message: message.into(),
            body: match body {
                Value::Object(map) => Some(map),
                _ => None,
            },
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The response body the client gets.
    pub fn response_body(&self) -> Bytes {
        match &self.body {
            None => Bytes::from_static(CODE_500),
            Some(map) => {
                let mut map = map.clone();
                map.entry("code").or_insert(Value::from(500));
                serde_json::to_vec(&map)
                    .map(Bytes::from)
                    .unwrap_or_else(|_| Bytes::from_static(CODE_500))
            }
        }
    }
}

impl std::fmt::Display for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HandlerError {}

impl From<crate::session::SessionError> for HandlerError {
    fn from(e: crate::session::SessionError) -> Self {
        Self::new(e.to_string())
    }
}

impl From<crate::error::ClusterError> for HandlerError {
    fn from(e: crate::error::ClusterError) -> Self {
        Self::new(e.to_string())
    }
}

impl From<serde_json::Error> for HandlerError {
    fn from(e: serde_json::Error) -> Self {
        Self::new(e.to_string())
    }
}

impl From<anyhow::Error> for HandlerError {
    fn from(e: anyhow::Error) -> Self {
        Self::new(format!("{e:#}"))
    }
}

impl From<String> for HandlerError {
    fn from(e: String) -> Self {
        Self::new(e)
    }
}

impl From<&str> for HandlerError {
    fn from(e: &str) -> Self {
        Self::new(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_like_pomelo() {
        assert_eq!(&HandlerError::new("x").response_body()[..], CODE_500);
        let e = HandlerError::with_body("dup", serde_json::json!({"error": true}));
        assert_eq!(&e.response_body()[..], br#"{"error":true,"code":500}"#);
        let e = HandlerError::with_body("dup", serde_json::json!({"code": 500, "error": true}));
        assert_eq!(&e.response_body()[..], br#"{"code":500,"error":true}"#);
        let e = HandlerError::with_body("x", serde_json::json!([1]));
        assert_eq!(&e.response_body()[..], CODE_500);
    }
}
