fn main() -> std::process::ExitCode {
    crm_server::cli::main()
}
