//! Feature parity between the CLI's build and the apps' build: see this
//! crate's `Cargo.toml`. It has no code.
