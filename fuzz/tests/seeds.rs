//! `fuzz/seeds/` holds exactly what `dkv_fuzz::seeds::all()` builds. Run with
//! `DKV_FUZZ_WRITE_SEEDS=1` to (re)write the directory after changing the seeds.

use std::collections::BTreeSet;
use std::path::Path;

#[test]
fn seed_directory_matches_the_generator() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let seeds = dkv_fuzz::seeds::all();
    let write = std::env::var_os("DKV_FUZZ_WRITE_SEEDS").is_some();
    let mut names = BTreeSet::new();
    for seed in &seeds {
        assert!(
            names.insert((seed.target, seed.name.clone())),
            "duplicate {}",
            seed.name
        );
        let path = root.join(seed.target).join(&seed.name);
        if write {
            std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
            std::fs::write(&path, &seed.data).expect("write seed");
        }
        let on_disk = std::fs::read(&path).unwrap_or_else(|_| {
            panic!(
                "{} missing: run with DKV_FUZZ_WRITE_SEEDS=1",
                path.display()
            )
        });
        assert_eq!(
            on_disk,
            seed.data,
            "{} is stale: run with DKV_FUZZ_WRITE_SEEDS=1",
            path.display()
        );
    }
    for (target, _) in dkv_fuzz::TARGETS {
        for entry in std::fs::read_dir(root.join(target)).expect("seed dir") {
            let name = entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned();
            assert!(
                names.contains(&(target, name.clone())),
                "stray seed {target}/{name}"
            );
        }
    }
}

#[test]
fn every_message_kind_has_a_decode_seed() {
    let seeds = dkv_fuzz::seeds::all();
    for kind in dkv_proto::Kind::ALL {
        let found = seeds.iter().filter(|s| s.target == "decode").any(|s| {
            let frames = dkv_fuzz::split_frames(&s.data);
            dkv_proto::Message::decode(&frames).is_ok_and(|m| m.kind() == kind)
        });
        assert!(found, "no decode seed of kind {kind:?}");
    }
}
