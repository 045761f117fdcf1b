// sled copies tree nodes on every write: with glibc's malloc a third of an import's CPU
// went to allocating and freeing those copies; with mimalloc imports run about 25%
// faster and tickets about 40% (see the README's benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    crm_server::cli::main()
}
