//! The real `crm-server` command line, built inside this crate so that its tests can
//! start it as a separate process (`CARGO_BIN_EXE_crm-server-under-test`) and kill it.

fn main() -> std::process::ExitCode {
    crm_server::cli::main()
}
