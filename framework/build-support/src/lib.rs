//! Build-script helper for Shaddock apps: typed remotes from `proto/*.proto`.
//!
//! An app's remotes (Pomelo's `app/servers/<type>/remote/*`) are gRPC
//! services described in `proto/*.proto`. This crate turns them into Rust
//! **without a system `protoc`** ([protox] parses the files in pure Rust) and
//! adds, next to the message types and tonic stubs, one typed *caller* per
//! service, so calling a remote is one line for the app author:
//!
//! ```text
//! // game-server/build.rs, inside `fn main`:
//! shaddock_build::compile_protos("../proto").unwrap_or_else(|e| panic!("{e}"));
//!
//! // game-server/src/main.rs: the proto package `chat`, as a module.
//! mod proto {
//!     shaddock::include_remotes!("chat");
//! }
//!
//! // anywhere with an `app: App`: Pomelo's
//! // `app.rpc.chat.chatRemote.add(session, uid, serverId, rid, true, cb)`.
//! let users = rpc::ChatRemote::by_key(&app, &rid).add(AddRequest { .. }).await?.users;
//! ```
//!
//! The caller (`proto::rpc::ChatRemote`) does what every hand-written remote
//! call used to repeat: `by_key` asks the server type's router for the server
//! that owns the key (`to_server` names a server id instead), the method
//! wraps the pooled channel in the tonic client and runs the call inside
//! `Rpc::call`, which applies the framework's RPC timeout and maps a tonic
//! status to a `ClusterError` naming the server. Keeping that in the runtime,
//! not in every app, is what lets the timeout or the error mapping change in
//! one place.
//!
//! ## Conventions
//!
//! * **The proto package is the server type.** `package chat;` is served by
//!   the `chat` servers, as Pomelo's `app.rpc.chat` is. Map another name with
//!   [`Builder::server_type`].
//! * **Only unary methods get a caller.** Streaming ones are listed on the
//!   caller's doc and left to the tonic client (`chat_remote_client`).
//! * **Paths go through the runtime.** Generated code names `::shaddock::tonic`,
//!   `::shaddock::prost` and `::shaddock::tonic_prost`, the framework's
//!   re-exports, so an app depends on `shaddock` alone and cannot end up with
//!   a second, incompatible tonic. prost has an option for that
//!   (`prost_path`); tonic-build has none, so its output is rewritten token
//!   by token (`paths.rs`). Well-known types (`google.protobuf.*`) still need
//!   the app to depend on `prost-types`.
//!
//! The framework itself depends on tonic and prost directly and compiles its
//! own protos with [`compile_files_with`], which keeps tonic-build's plain
//! paths and generates no callers.
//!
//! Cargo is told to re-run the build script when the folder or any file in it
//! changes (`cargo:rerun-if-changed`), because a build script that prints no
//! such line re-runs on *every* file change of the package, and one that
//! prints only files misses newly added protos.

mod callers;
mod generator;
mod paths;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use prost_build::{Config, Module};
use tonic_prost_build::FileDescriptorSet;

/// Why compiling a proto folder failed. The message names the folder or file.
#[derive(Debug)]
pub enum BuildError {
    /// The folder could not be read.
    Io { path: PathBuf, source: io::Error },
    /// The folder holds no `*.proto` file.
    NoProtos(PathBuf),
    /// protox rejected a file (syntax error, unknown import, …).
    Parse(String),
    /// Code generation failed.
    Generate(io::Error),
    /// The protos are valid but the generated code could not compile.
    Unsupported(String),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Io { path, source } => {
                write!(f, "cannot read proto folder `{}`: {source}", path.display())
            }
            BuildError::NoProtos(path) => {
                write!(f, "no *.proto file in `{}`", path.display())
            }
            BuildError::Parse(msg) => write!(f, "invalid proto: {msg}"),
            BuildError::Generate(e) => write!(f, "generating Rust code failed: {e}"),
            BuildError::Unsupported(msg) => write!(f, "unsupported proto: {msg}"),
        }
    }
}

impl std::error::Error for BuildError {}

/// Lists the `*.proto` files directly inside `dir`, sorted by name so the
/// generated code does not depend on directory order.
pub fn proto_files(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>, BuildError> {
    let dir = dir.as_ref();
    let entries = std::fs::read_dir(dir).map_err(|source| BuildError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| BuildError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "proto") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Compiles every `*.proto` in `dir` for an app: messages, tonic stubs and
/// typed callers, with paths through the `::shaddock` re-exports, into
/// `OUT_DIR` (include them with `shaddock::include_remotes!("<package>")`).
/// `dir` is the import root. Call it from a build script; it is
/// [`configure`]`().compile_protos(dir)`.
pub fn compile_protos(dir: impl AsRef<Path>) -> Result<(), BuildError> {
    configure().compile_protos(dir)
}

/// Prints `rerun-if-changed` for `dir` and each `*.proto` in it, and returns
/// those files (an empty folder is an error: a typo in the path, most likely).
pub fn watch_proto_dir(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>, BuildError> {
    let dir = dir.as_ref();
    println!("cargo:rerun-if-changed={}", dir.display());
    let files = proto_files(dir)?;
    if files.is_empty() {
        return Err(BuildError::NoProtos(dir.to_path_buf()));
    }
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    Ok(files)
}

/// The app code generator with its defaults: runtime `::shaddock`, server
/// type = proto package.
pub fn configure() -> Builder {
    Builder {
        runtime: "::shaddock".to_string(),
        server_types: HashMap::new(),
        out_dir: None,
    }
}

/// Options of the app code generator (see the [crate docs](crate)).
#[derive(Debug, Clone)]
pub struct Builder {
    runtime: String,
    server_types: HashMap<String, String>,
    out_dir: Option<PathBuf>,
}

impl Builder {
    /// The path generated code reaches tonic, prost, tonic-prost and the
    /// cluster API through (default `::shaddock`). Another path only makes
    /// sense for a crate that re-exports the framework under a new name.
    pub fn runtime_path(mut self, path: impl Into<String>) -> Self {
        self.runtime = path.into();
        self
    }

    /// Proto package `package` is served by servers of type `server_type`
    /// (default: the package name itself).
    pub fn server_type(
        mut self,
        package: impl Into<String>,
        server_type: impl Into<String>,
    ) -> Self {
        self.server_types.insert(package.into(), server_type.into());
        self
    }

    /// Writes into `dir` instead of `OUT_DIR`.
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// Compiles every `*.proto` in `dir` (the import root), printing
    /// `rerun-if-changed` lines for the folder and its files.
    pub fn compile_protos(self, dir: impl AsRef<Path>) -> Result<(), BuildError> {
        let dir = dir.as_ref();
        let files = watch_proto_dir(dir)?;
        self.compile_files(&files, dir)
    }

    /// Compiles `files` with `include` as the import root (no
    /// `rerun-if-changed` lines: the caller decides what to watch).
    pub fn compile_files(self, files: &[PathBuf], include: &Path) -> Result<(), BuildError> {
        self.compile_fds(parse(files, include)?)
    }

    /// Generates from a descriptor set and writes one `<package>.rs` per
    /// package.
    pub fn compile_fds(self, fds: FileDescriptorSet) -> Result<(), BuildError> {
        check(&fds)?;
        self.prost_config()
            .compile_fds(fds)
            .map_err(BuildError::Generate)
    }

    /// Generates from a descriptor set without writing anything: proto
    /// package → Rust code, as `compile_fds` would write it. For tests and
    /// for reading what an app gets.
    pub fn generate(self, fds: FileDescriptorSet) -> Result<BTreeMap<String, String>, BuildError> {
        check(&fds)?;
        let requests = fds
            .file
            .into_iter()
            .map(|file| (Module::from_protobuf_package_name(file.package()), file))
            .collect();
        let modules = self
            .prost_config()
            .generate(requests)
            .map_err(BuildError::Generate)?;
        Ok(modules
            .into_iter()
            .map(|(module, code)| (module.parts().collect::<Vec<_>>().join("."), code))
            .collect())
    }

    /// prost for the messages, with our service generator (tonic stubs +
    /// callers) and every path pointed at the runtime.
    fn prost_config(self) -> Config {
        let tonic = tonic_prost_build::configure()
            .build_client(true)
            .build_server(true)
            .codec_path(format!("{}::tonic_prost::ProstCodec", self.runtime))
            .service_generator();
        let mut config = Config::new();
        config.prost_path(format!("{}::prost", self.runtime));
        if let Some(dir) = &self.out_dir {
            config.out_dir(dir);
        }
        config.service_generator(Box::new(generator::RemoteGenerator::new(
            tonic,
            self.runtime,
            self.server_types,
        )));
        config
    }
}

/// Parses `files` with protox.
fn parse(files: &[PathBuf], include: &Path) -> Result<FileDescriptorSet, BuildError> {
    protox::compile(files, [include]).map_err(|e| BuildError::Parse(e.to_string()))
}

/// Rejects protos whose generated code would not compile, with a message
/// that says why instead of a rustc error inside `OUT_DIR`.
fn check(fds: &FileDescriptorSet) -> Result<(), BuildError> {
    let squash = |name: &str| name.replace('_', "").to_ascii_lowercase();
    for file in &fds.file {
        for service in &file.service {
            for method in &service.method {
                let name = squash(method.name());
                let mut ctors = callers::CONSTRUCTORS.iter().map(|c| c.name);
                if let Some(ctor) = ctors.find(|c| squash(c) == name) {
                    return Err(BuildError::Unsupported(format!(
                        "method `{}.{}/{}` would clash with the caller constructor `{ctor}`: rename it",
                        file.package(),
                        service.name(),
                        method.name()
                    )));
                }
            }
        }
        if !file.service.is_empty() {
            for message in &file.message_type {
                let nests = !message.nested_type.is_empty()
                    || !message.enum_type.is_empty()
                    || !message.oneof_decl.is_empty();
                if nests && squash(message.name()) == callers::MODULE {
                    return Err(BuildError::Unsupported(format!(
                        "message `{}.{}` has nested types, so prost generates a module `{}` \
                         that would clash with the callers' module: rename it",
                        file.package(),
                        message.name(),
                        callers::MODULE
                    )));
                }
            }
        }
    }
    Ok(())
}

// --- Plain tonic output (crates that depend on tonic and prost directly) ---

/// Compiles the given files with `include` as the import root into plain
/// tonic-prost-build output: `tonic::` / `::prost::` paths, no callers. For
/// crates that depend on tonic and prost themselves, like the framework; an
/// app wants [`compile_protos`]. No rerun-if-changed lines: the caller
/// decides what to watch.
pub fn compile_files(files: &[PathBuf], include: &Path) -> Result<(), BuildError> {
    compile_files_with(files, include, |b| b)
}

/// Like [`compile_files`], with a hook to adjust the generator (e.g.
/// `|b| b.bytes(".")` to get `bytes::Bytes` instead of `Vec<u8>` fields).
pub fn compile_files_with(
    files: &[PathBuf],
    include: &Path,
    configure: impl FnOnce(tonic_prost_build::Builder) -> tonic_prost_build::Builder,
) -> Result<(), BuildError> {
    let fds = parse(files, include)?;
    configure(
        tonic_prost_build::configure()
            .build_client(true)
            .build_server(true),
    )
    .compile_fds(fds)
    .map_err(BuildError::Generate)
}

/// The code generator, re-exported so build scripts can name its builder.
pub use tonic_prost_build;
