//! Build-script helper for Shaddock apps.
//!
//! User remotes are typed tonic services described in `proto/*.proto`. This
//! crate compiles them **without a system `protoc`**: [protox] parses the
//! files into a descriptor set in pure Rust and `tonic-prost-build` turns
//! that into message types plus client and server stubs in `OUT_DIR`.
//!
//! ```text
//! // game-server/build.rs, inside `fn main`:
//! shaddock_build::compile_protos("../proto").expect("compiling ../proto");
//! ```
//!
//! and in the crate: `tonic::include_proto!("chat");` (the proto package).
//!
//! Cargo is told to re-run the build script when the folder or any file in it
//! changes (`cargo:rerun-if-changed`), because a build script that prints no
//! such line re-runs on *every* file change of the package, and one that
//! prints only files misses newly added protos.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

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

/// Compiles every `*.proto` in `dir` (client and server stubs) into
/// `OUT_DIR`, with `dir` as the import root, and prints `rerun-if-changed`
/// for the folder and each file. Call it from a build script.
pub fn compile_protos(dir: impl AsRef<Path>) -> Result<(), BuildError> {
    let dir = dir.as_ref();
    println!("cargo:rerun-if-changed={}", dir.display());
    let files = proto_files(dir)?;
    if files.is_empty() {
        return Err(BuildError::NoProtos(dir.to_path_buf()));
    }
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    compile_files(&files, dir)
}

/// Compiles the given files with `include` as the import root (no
/// rerun-if-changed lines: the caller decides what to watch).
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
    let fds = protox::compile(files, [include]).map_err(|e| BuildError::Parse(e.to_string()))?;
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
