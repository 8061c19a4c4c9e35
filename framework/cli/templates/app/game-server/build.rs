//! Compiles the remotes of `../proto/*.proto` (protox: no system protoc).

fn main() {
    shaddock_build::compile_protos("../proto").unwrap_or_else(|e| panic!("{e}"));
}
