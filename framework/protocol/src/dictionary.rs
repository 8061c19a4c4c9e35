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
    /// Routes by code: code = index + 1. Dictionaries built by
    /// [`RouteDictionary::new`] are dense; one rebuilt from a server's
    /// handshake ([`RouteDictionary::from_codes`]) may have gaps.
    routes: Vec<Option<String>>,
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
            dict.routes.push(Some(route));
        }
        dict.compute_version();
        dict
    }

    /// Builds a dictionary with exactly the given codes, as a server
    /// announced them in its handshake (`routeToCode`). Unlike
    /// [`RouteDictionary::new`] nothing is re-numbered, so a client sends the
    /// codes the server expects even when they are not dense (a Pomelo
    /// server whose dictionary.json repeats a route leaves gaps). Code 0 is
    /// skipped; a route or code given twice keeps its last pairing.
    pub fn from_codes<I, S>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (S, u16)>,
        S: Into<String>,
    {
        let mut dict = Self::default();
        for (route, code) in pairs {
            if code == 0 {
                continue;
            }
            let route = route.into();
            let index = usize::from(code) - 1;
            if dict.routes.len() <= index {
                dict.routes.resize(index + 1, None);
            }
            if let Some(old_code) = dict.codes.insert(route.clone(), code) {
                dict.routes[usize::from(old_code) - 1] = None;
            }
            if let Some(old_route) = dict.routes[index].replace(route)
                && dict.codes.get(&old_route) == Some(&code)
            {
                dict.codes.remove(&old_route);
            }
        }
        dict.compute_version();
        dict
    }

    fn compute_version(&mut self) {
        let text = serde_json::to_string(&self.route_to_code()).unwrap_or_default();
        self.version =
            base64::engine::general_purpose::STANDARD.encode(Md5::digest(text.as_bytes()));
    }

    /// `(code, route)` pairs in code order.
    fn entries(&self) -> impl Iterator<Item = (usize, &String)> {
        self.routes
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().map(|r| (i + 1, r)))
    }

    /// The code of `route`, if it has one.
    pub fn code(&self, route: &str) -> Option<u16> {
        self.codes.get(route).copied()
    }

    /// The route of `code`, if it is assigned.
    pub fn route(&self, code: u16) -> Option<&str> {
        let index = usize::from(code).checked_sub(1)?;
        self.routes.get(index)?.as_deref()
    }

    /// `dictVersion` as sent in the handshake.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Number of routes with a code.
    pub fn len(&self) -> usize {
        self.codes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    /// The `dict` / `routeToCode` object of the handshake, in code order.
    pub fn route_to_code(&self) -> Value {
        let map: Map<String, Value> = self
            .entries()
            .map(|(code, r)| (r.clone(), Value::from(code)))
            .collect();
        Value::Object(map)
    }

    /// The `codeToRoute` object of the handshake (keys are decimal codes).
    pub fn code_to_route(&self) -> Value {
        let map: Map<String, Value> = self
            .entries()
            .map(|(code, r)| (code.to_string(), Value::from(r.clone())))
            .collect();
        Value::Object(map)
    }
}
