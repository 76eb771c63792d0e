//! Prints the programs of a seed range, or writes each to a folder:
//! `cargo run -p nnc-progen --example show -- 0 5 [DIR]`.
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number =
        |k: usize, default: u64| args.get(k).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (from, to) = (number(0, 0), number(1, 3));
    for seed in from..to {
        let source = nnc_progen::generate(seed).source();
        match args.get(2) {
            Some(dir) => {
                if let Err(e) = std::fs::write(format!("{dir}/r{seed}.nn"), source) {
                    eprintln!("{dir}: {e}");
                    std::process::exit(1);
                }
            }
            None => println!("{source}"),
        }
    }
}
