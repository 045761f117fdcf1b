//! The real `crm-server` command line, built inside this crate so that its tests can
//! start it as a separate process (`CARGO_BIN_EXE_crm-server-under-test`) and kill it.
//! The benchmarks (tests/bench, crate crm-bench) measure target/release/crm-server itself.

// The same allocator as the real binary, so that the process under test is the one that ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    crm_server::cli::main()
}
