//! Route dictionary (§5.2): route ↔ 2-byte code, so a frequent route costs
//! two bytes on the wire instead of its full name.
//!
//! Codes follow Pomelo exactly: every handler route sorted in JavaScript's
//! default order (UTF-16 code units), numbered from 1, then any extra routes
//! (from `config/dictionary.json`, e.g. push routes) appended in file order.
//! The version is base64(MD5(JSON text of the route→code object)), so a
//! client that cached a dictionary can skip it on the next handshake.

use std::collections::HashMap;

use base64::Engine;
use md5::{Digest, Md5};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteDictionary {
    /// Routes in code order; code = index + 1.
    routes: Vec<String>,
    codes: HashMap<String, u16>,
    version: String,
}

impl RouteDictionary {
    /// Builds the dictionary from handler routes (sorted here) and extra
    /// routes (kept in the given order). Duplicates are ignored; routes past
    /// code 65535 are left out (they travel uncompressed).
    pub fn new<H, E>(handler_routes: H, extra_routes: E) -> Self
    where
        H: IntoIterator,
        H::Item: Into<String>,
        E: IntoIterator,
        E::Item: Into<String>,
    {
        let mut sorted: Vec<String> = handler_routes.into_iter().map(Into::into).collect();
        sorted.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
        let mut dict = Self::default();
        for route in sorted
            .into_iter()
            .chain(extra_routes.into_iter().map(Into::into))
        {
            if dict.codes.contains_key(&route) || dict.routes.len() >= u16::MAX as usize {
                continue;
            }
            dict.codes
                .insert(route.clone(), dict.routes.len() as u16 + 1);
            dict.routes.push(route);
        }
        let text = serde_json::to_string(&dict.route_to_code()).unwrap_or_default();
        dict.version =
            base64::engine::general_purpose::STANDARD.encode(Md5::digest(text.as_bytes()));
        dict
    }

    /// The code of `route`, if it has one.
    pub fn code(&self, route: &str) -> Option<u16> {
        self.codes.get(route).copied()
    }

    /// The route of `code`, if it is assigned.
    pub fn route(&self, code: u16) -> Option<&str> {
        let index = usize::from(code).checked_sub(1)?;
        self.routes.get(index).map(String::as_str)
    }

    /// `dictVersion` as sent in the handshake.
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The `dict` / `routeToCode` object of the handshake, in code order.
    pub fn route_to_code(&self) -> Value {
        let map: Map<String, Value> = self
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| (r.clone(), Value::from(i + 1)))
            .collect();
        Value::Object(map)
    }

    /// The `codeToRoute` object of the handshake (keys are decimal codes).
    pub fn code_to_route(&self) -> Value {
        let map: Map<String, Value> = self
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| ((i + 1).to_string(), Value::from(r.clone())))
            .collect();
        Value::Object(map)
    }
}
