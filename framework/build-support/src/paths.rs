//! Points tonic-build's output at the runtime's re-exports.
//!
//! prost can be told where `prost` lives (`Config::prost_path`) and
//! tonic-prost-build where its codec lives (`codec_path`), but tonic-build
//! writes `tonic::…` paths into its client and server modules with no option
//! to change them. Those paths resolve only if the app's crate depends on
//! tonic itself, because a nested `pub mod x_client { use tonic::codegen::*; }`
//! cannot see a `use shaddock::tonic;` placed around it. So the generated
//! stubs are rewritten, token by token, to absolute runtime paths
//! (`::shaddock::tonic::…`).
//!
//! Tokens, not text: a proto comment that mentions `tonic::` ends up in a
//! `#[doc = "…"]` string literal and must stay as written, which a
//! search-and-replace on the text would break.

use std::str::FromStr;

use proc_macro2::{Group, Punct, Spacing, TokenStream, TokenTree};

/// The crates whose paths are redirected to `runtime::<crate>`.
const REEXPORTED: &[&str] = &["tonic", "prost", "tonic_prost"];

/// Rewrites every path that starts with one of the re-exported crates
/// (`tonic::x`, `::tonic::x`) to start at `runtime` instead
/// (`::shaddock::tonic::x`). Paths where the crate name is a later segment
/// (`a::tonic::x`) are someone else's module and stay as they are.
///
/// Panics if `code` does not lex as Rust: it is tonic-build's output, so
/// that is a bug there, and a build script has no better way to report it.
pub(crate) fn rewrite(code: &str, runtime: &str) -> String {
    let tokens = TokenStream::from_str(code)
        .unwrap_or_else(|e| panic!("tonic-build produced code that does not lex: {e}"));
    let runtime = TokenStream::from_str(runtime)
        .unwrap_or_else(|e| panic!("runtime path `{runtime}` is not a Rust path: {e}"));
    rewrite_stream(tokens, &runtime).to_string()
}

fn rewrite_stream(tokens: TokenStream, runtime: &TokenStream) -> TokenStream {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out: Vec<TokenTree> = Vec::with_capacity(tokens.len());
    for (i, token) in tokens.iter().enumerate() {
        match token {
            TokenTree::Group(group) => {
                let mut inner =
                    Group::new(group.delimiter(), rewrite_stream(group.stream(), runtime));
                inner.set_span(group.span());
                out.push(inner.into());
            }
            TokenTree::Ident(ident)
                if REEXPORTED.iter().any(|name| ident == name) && is_path_sep(&tokens[i + 1..]) =>
            {
                match path_start(&out) {
                    PathStart::Segment => {}
                    PathStart::Absolute => {
                        // Drop the `::` already copied: the runtime path
                        // brings its own start.
                        out.truncate(out.len() - 2);
                        push_runtime(&mut out, runtime);
                    }
                    PathStart::Relative => push_runtime(&mut out, runtime),
                }
                out.push(token.clone());
            }
            _ => out.push(token.clone()),
        }
    }
    out.into_iter().collect()
}

/// Appends `runtime ::`.
fn push_runtime(out: &mut Vec<TokenTree>, runtime: &TokenStream) {
    out.extend(runtime.clone());
    out.push(Punct::new(':', Spacing::Joint).into());
    out.push(Punct::new(':', Spacing::Alone).into());
}

/// Where an identifier sits in a path, judged by what precedes it.
enum PathStart {
    /// `tonic::x`: first segment of a relative path.
    Relative,
    /// `::tonic::x`: first segment of an absolute path.
    Absolute,
    /// `a::tonic::x` or `<T>::tonic`: not the crate.
    Segment,
}

fn path_start(before: &[TokenTree]) -> PathStart {
    let n = before.len();
    if n < 2 || !is_path_sep(&before[n - 2..]) {
        return PathStart::Relative;
    }
    match before.get(n.wrapping_sub(3)) {
        Some(TokenTree::Ident(_)) | Some(TokenTree::Group(_)) => PathStart::Segment,
        // `<T as Trait>::tonic` is an associated item, but `-> ::tonic::X`
        // and `=> ::tonic::X` start a path after an arrow.
        Some(TokenTree::Punct(p)) if p.as_char() == '>' => match before.get(n.wrapping_sub(4)) {
            Some(TokenTree::Punct(q))
                if q.spacing() == Spacing::Joint && matches!(q.as_char(), '-' | '=') =>
            {
                PathStart::Absolute
            }
            _ => PathStart::Segment,
        },
        _ => PathStart::Absolute,
    }
}

/// Whether `tokens` starts with `::`.
fn is_path_sep(tokens: &[TokenTree]) -> bool {
    matches!(
        tokens,
        [TokenTree::Punct(a), TokenTree::Punct(b), ..]
            if a.as_char() == ':' && a.spacing() == Spacing::Joint && b.as_char() == ':'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `code` without whitespace: token spacing (`<::` vs `< ::`) differs
    /// between lexed and built tokens and means nothing here.
    fn norm(code: &str) -> String {
        code.split_whitespace().collect()
    }

    #[test]
    fn relative_and_absolute_crate_paths_go_through_the_runtime() {
        let got = rewrite(
            "use tonic::codegen::*; fn f() -> ::prost::alloc::string::String { tonic_prost::x() }",
            "::shaddock",
        );
        assert_eq!(
            norm(&got),
            norm(
                "use ::shaddock::tonic::codegen::*; \
                 fn f() -> ::shaddock::prost::alloc::string::String { ::shaddock::tonic_prost::x() }"
            )
        );
    }

    #[test]
    fn nested_groups_are_rewritten() {
        let got = rewrite(
            "pub mod c { impl<T: tonic::client::GrpcService<tonic::body::Body>> X<T> {} }",
            "::shaddock",
        );
        assert_eq!(
            norm(&got),
            norm(
                "pub mod c { impl<T: ::shaddock::tonic::client::GrpcService<\
                 ::shaddock::tonic::body::Body>> X<T> {} }"
            )
        );
    }

    #[test]
    fn later_segments_doc_strings_and_plain_idents_stay() {
        let code = "/// calls tonic::Status\n\
                    fn f(tonic: u8) { a::tonic::x(); <T as A>::prost::y(); tonic }";
        let lexed = TokenStream::from_str(code).unwrap().to_string();
        assert_eq!(norm(&rewrite(code, "::shaddock")), norm(&lexed));
    }

    #[test]
    fn a_crate_relative_runtime_works_too() {
        assert_eq!(
            norm(&rewrite("tonic::Status", "crate::rt")),
            "crate::rt::tonic::Status"
        );
    }
}
