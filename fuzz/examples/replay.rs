//! Replays one input file through a target: `cargo run -p dkv-fuzz --example replay
//! -- <target> <file>` (set `DKV_FUZZ_TRACE=1` to trace the `node` target's steps).

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, target, file] = &args[..] else {
        eprintln!("usage: replay <decode|beacon|node> <file>");
        std::process::exit(2);
    };
    let data = std::fs::read(file).expect("readable input");
    let (_, run) = dkv_fuzz::TARGETS
        .into_iter()
        .find(|(name, _)| name == target)
        .expect("a target name");
    run(&data);
    println!("{target} passes {file}");
}
