//! The collbench command: everything happens in `collbench::app::main`.

fn main() {
    std::process::exit(collbench::app::main(std::env::args().collect()));
}
