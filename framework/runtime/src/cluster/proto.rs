//! Generated code of `framework/proto/cluster.proto` (package
//! `shaddock.cluster`). Bodies are `bytes::Bytes`, so a pushed body is
//! shared, not copied, until it is written to the wire.

#![allow(missing_docs, clippy::all)]

tonic::include_proto!("shaddock.cluster");
