//! The `shaddock` command-line tool (see `shaddock --help` and docs/cli.md).

fn main() -> std::process::ExitCode {
    shaddock_cli::main()
}
