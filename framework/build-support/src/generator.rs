//! The prost-build service generator behind [`crate::Builder`].
//!
//! prost-build hands every service to one `ServiceGenerator` and, once a
//! package is complete, calls `finalize_package` on it. That is the hook used
//! here: tonic-prost-build's generator writes the client and server stubs
//! (rewritten to runtime paths), and the services are remembered so the
//! callers of a whole package, possibly spread over several files, land once
//! at the end of that package's module.

use std::collections::HashMap;

use prost_build::{Service, ServiceGenerator};

use crate::{callers, paths};

pub(crate) struct RemoteGenerator {
    /// tonic-prost-build's generator (client and server stubs).
    tonic: Box<dyn ServiceGenerator>,
    /// Path of the runtime crate, e.g. `::shaddock`.
    runtime: String,
    /// Proto package → Pomelo server type, where they differ.
    server_types: HashMap<String, String>,
    /// Services seen, per package, until the package is finalized.
    pending: HashMap<String, Vec<Service>>,
}

impl RemoteGenerator {
    pub(crate) fn new(
        tonic: Box<dyn ServiceGenerator>,
        runtime: String,
        server_types: HashMap<String, String>,
    ) -> Self {
        RemoteGenerator {
            tonic,
            runtime,
            server_types,
            pending: HashMap::new(),
        }
    }

    /// Runs one step of the tonic generator into a scratch buffer and
    /// appends it to `buf` with its paths pointed at the runtime.
    fn tonic_step(
        &mut self,
        buf: &mut String,
        step: impl FnOnce(&mut dyn ServiceGenerator, &mut String),
    ) {
        let mut code = String::new();
        step(self.tonic.as_mut(), &mut code);
        if !code.trim().is_empty() {
            buf.push_str(&paths::rewrite(&code, &self.runtime));
            buf.push('\n');
        }
    }
}

impl ServiceGenerator for RemoteGenerator {
    fn generate(&mut self, service: Service, buf: &mut String) {
        let stubs = service.clone();
        self.tonic_step(buf, |tonic, code| tonic.generate(stubs, code));
        self.pending
            .entry(service.package.clone())
            .or_default()
            .push(service);
    }

    fn finalize(&mut self, buf: &mut String) {
        self.tonic_step(buf, |tonic, code| tonic.finalize(code));
    }

    fn finalize_package(&mut self, package: &str, buf: &mut String) {
        self.tonic_step(buf, |tonic, code| tonic.finalize_package(package, code));
        if let Some(services) = self.pending.remove(package) {
            let server_type = self
                .server_types
                .get(package)
                .map_or(package, String::as_str);
            buf.push_str(&callers::render(
                &services,
                package,
                server_type,
                &self.runtime,
            ));
        }
    }
}
