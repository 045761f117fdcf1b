// sled copies tree nodes on every write; glibc's malloc spent a third of an import's CPU
// on those copies and let the heap grow, mimalloc does neither (see the README's
// benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    crm_server::cli::main()
}
