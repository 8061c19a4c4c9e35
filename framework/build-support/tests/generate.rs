//! The generator on a small proto set compiled with protox, as a build
//! script would: which callers an app gets, with which signatures, and that
//! every path goes through the runtime's re-exports.

use std::path::{Path, PathBuf};

use shaddock_build::tonic_prost_build::FileDescriptorSet;
use shaddock_build::{BuildError, configure};

fn proto_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(name)
}

/// `tests/proto`: package `chat` over two files (services `ChatRemote` and
/// `ChatAdmin`) and the message-only package `common`.
fn fds() -> FileDescriptorSet {
    let dir = proto_dir("proto");
    let files = shaddock_build::proto_files(&dir).unwrap();
    protox::compile(&files, [&dir]).unwrap()
}

fn bad(file: &str) -> FileDescriptorSet {
    let dir = proto_dir("proto_bad");
    protox::compile([dir.join(file)], [&dir]).unwrap()
}

fn chat_code() -> String {
    let mut out = configure().generate(fds()).unwrap();
    out.remove("chat").expect("package chat is generated")
}

/// `code` without whitespace and trailing commas, so assertions don't
/// depend on how prettyplease lays the generated code out.
fn tokens(code: &str) -> String {
    code.split_whitespace()
        .collect::<String>()
        .replace(",)", ")")
        .replace(",>", ">")
        .replace(",}", "}")
}

fn assert_has(code: &str, snippet: &str) {
    assert!(
        tokens(code).contains(&tokens(snippet)),
        "generated code lacks `{snippet}`:\n{code}"
    );
}

/// The `pub mod rpc { … }` part of a package's code.
fn rpc_module(code: &str) -> &str {
    let start = code.find("pub mod rpc {").expect("an rpc module");
    &code[start..]
}

#[test]
fn every_service_of_a_package_gets_a_caller_in_one_rpc_module() {
    let code = chat_code();
    assert_eq!(code.matches("pub mod rpc {").count(), 1);
    let rpc = rpc_module(&code);
    assert_has(rpc, r#"pub const SERVER_TYPE: &str = "chat";"#);
    for service in ["ChatRemote", "ChatAdmin"] {
        assert_has(rpc, &format!("pub struct {service}<'a> {{"));
        assert_has(rpc, &format!("impl<'a> {service}<'a> {{"));
    }
    assert_has(
        rpc,
        "pub fn by_key(app: &'a ::shaddock::App, key: &str) -> Self { \
         let rpc = app.rpc(); \
         Self { rpc, target: rpc.channel_by_key(SERVER_TYPE, key) } }",
    );
    assert_has(
        rpc,
        "pub fn to_server(app: &'a ::shaddock::App, server_id: &str) -> Self {",
    );
    assert_has(rpc, "rpc.channel_by_id(server_id)");
}

#[test]
fn unary_methods_are_typed_async_fns_through_rpc_call() {
    let code = chat_code();
    let rpc = rpc_module(&code);
    assert_has(
        rpc,
        "pub async fn add(&self, request: super::AddRequest) \
         -> ::core::result::Result<super::AddReply, ::shaddock::cluster::ClusterError> { \
         let (server, channel) = self.target.clone()?; \
         let mut client = super::chat_remote_client::ChatRemoteClient::new(channel); \
         self.rpc.call(&server, client.add(request)).await }",
    );
    // google.protobuf.Empty is `()`; another package's message is one more
    // `super::` away from the rpc module.
    assert_has(
        rpc,
        "pub async fn kick(&self, request: super::super::common::Id) \
         -> ::core::result::Result<(), ::shaddock::cluster::ClusterError>",
    );
    assert_has(
        rpc,
        "pub async fn count(&self, request: super::CountRequest) \
         -> ::core::result::Result<super::CountReply, ::shaddock::cluster::ClusterError>",
    );
    assert_has(
        rpc,
        "super::chat_admin_client::ChatAdminClient::new(channel)",
    );
}

#[test]
fn proto_comments_document_the_callers() {
    let code = chat_code();
    let rpc = rpc_module(&code);
    assert!(rpc.contains("/// Room membership."), "{rpc}");
    assert!(rpc.contains("/// Joins a room."), "{rpc}");
    assert!(rpc.contains("`chat.ChatRemote/Add` with the framework's RPC timeout"));
}

#[test]
fn streaming_methods_get_no_caller_but_a_note() {
    let code = chat_code();
    let rpc = rpc_module(&code);
    assert!(!tokens(rpc).contains("fn watch"), "{rpc}");
    assert!(rpc.contains("Streaming methods have no caller here (Watch)"));
    // The tonic client still has it.
    assert_has(&code, "pub async fn watch(");
}

#[test]
fn message_only_packages_get_no_callers() {
    let out = configure().generate(fds()).unwrap();
    let common = &out["common"];
    assert_has(common, "pub struct Id {");
    assert!(!common.contains("pub mod rpc"));
}

#[test]
fn every_tonic_and_prost_path_goes_through_the_runtime() {
    let code = chat_code();
    for name in ["tonic::", "prost::", "tonic_prost::"] {
        for (at, _) in code.match_indices(name) {
            let before = &code[..at];
            let via_runtime = before.ends_with("::shaddock::");
            let inside_tonic_prost = name == "prost::" && before.ends_with("tonic_");
            assert!(
                via_runtime || inside_tonic_prost,
                "`{name}` not through ::shaddock at byte {at}: …{}",
                &code[at.saturating_sub(60)..at + name.len()]
            );
        }
    }
    assert_has(&code, "::shaddock::tonic_prost::ProstCodec::default()");
    assert_has(&code, "use ::shaddock::tonic::codegen::*;");
    assert_has(&code, r#"#[prost(prost_path = "::shaddock::prost")]"#);
}

#[test]
fn server_type_and_runtime_path_can_be_changed() {
    let mut out = configure()
        .server_type("chat", "room")
        .runtime_path("crate::rt")
        .generate(fds())
        .unwrap();
    let code = out.remove("chat").unwrap();
    assert_has(
        rpc_module(&code),
        r#"pub const SERVER_TYPE: &str = "room";"#,
    );
    assert!(code.contains("Calls `chat.ChatRemote` on a `room` server"));
    assert_has(&code, "pub fn by_key(app: &'a crate::rt::App, key: &str)");
    assert_has(&code, "use crate::rt::tonic::codegen::*;");
    assert!(!code.contains("::shaddock"));
}

#[test]
fn compile_writes_what_generate_returns() {
    let out = tempfile::tempdir().unwrap();
    configure()
        .out_dir(out.path())
        .compile_protos(proto_dir("proto"))
        .unwrap();
    let written = std::fs::read_to_string(out.path().join("chat.rs")).unwrap();
    assert_eq!(written, chat_code());
}

#[test]
fn names_that_would_not_compile_are_rejected_with_a_reason() {
    let err = configure().generate(bad("method_clash.proto")).unwrap_err();
    assert!(matches!(err, BuildError::Unsupported(_)));
    assert!(err.to_string().contains("`clash.Lookup/ByKey`"), "{err}");
    assert!(err.to_string().contains("`by_key`"), "{err}");

    let err = configure().generate(bad("module_clash.proto")).unwrap_err();
    assert!(err.to_string().contains("message `clash.Rpc`"), "{err}");
}
