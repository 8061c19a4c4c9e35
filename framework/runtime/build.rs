//! Compiles the framework-owned cluster protocol (and the test-only echo
//! remote) with protox + tonic-prost-build: no system `protoc` needed.

use std::path::Path;

fn main() {
    // Cluster messages carry bodies that are shared, not copied: `Bytes`.
    compile("proto", |b| b.bytes("."));
    compile("tests/proto", |b| b);
}

fn compile(
    dir: &str,
    configure: impl FnOnce(
        shaddock_build::tonic_prost_build::Builder,
    ) -> shaddock_build::tonic_prost_build::Builder,
) {
    println!("cargo:rerun-if-changed={dir}");
    let files = shaddock_build::proto_files(dir).unwrap_or_else(|e| panic!("{e}"));
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    shaddock_build::compile_files_with(&files, Path::new(dir), configure)
        .unwrap_or_else(|e| panic!("{e}"));
}
