fn main() {
    std::process::exit(kraftd::cli::run());
}
