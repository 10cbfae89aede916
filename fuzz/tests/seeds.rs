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

/// The decode seeds' results.
fn decoded_seeds() -> Vec<Result<dkv_proto::Message, dkv_proto::DecodeError>> {
    dkv_fuzz::seeds::all()
        .iter()
        .filter(|s| s.target == "decode")
        .map(|s| dkv_proto::Message::decode(&dkv_fuzz::split_frames(&s.data)))
        .collect()
}

#[test]
fn every_decode_error_has_a_decode_seed() {
    use dkv_proto::DecodeError::*;
    let results = decoded_seeds();
    for err in [
        Empty,
        UnknownTopic,
        BadId,
        FrameCount,
        KeyNotUtf8,
        UnknownVersion,
        BadBody,
    ] {
        assert!(
            results.contains(&Err(err)),
            "no decode seed fails with {err:?}"
        );
    }
}

#[test]
fn dkv2_decode_seeds_reach_both_topics_and_both_step_kinds() {
    use dkv_proto::wire::{Body, Step};
    use dkv_proto::Message;
    let dkv: Vec<_> = decoded_seeds()
        .into_iter()
        .filter_map(|r| match r {
            Ok(Message::Dkv(e)) => Some(e),
            _ => None,
        })
        .collect();
    assert!(dkv.iter().any(|e| e.to.is_none()), "no dkv2.all seed");
    assert!(dkv.iter().any(|e| e.to.is_some()), "no dkv2.to seed");
    let steps: Vec<&Step> = dkv
        .iter()
        .flat_map(|e| match &e.body {
            Body::Sync { steps, .. } => steps.iter().collect(),
            _ => vec![],
        })
        .collect();
    assert!(steps.iter().any(|s| matches!(s, Step::Fingerprint { .. })));
    assert!(steps.iter().any(|s| matches!(s, Step::Items { .. })));
}

#[test]
fn every_datagram_outcome_has_a_beacon_seed() {
    use dkv_proto::{parse_datagram, BeaconError, Datagram};
    let outcomes: Vec<_> = dkv_fuzz::seeds::all()
        .into_iter()
        .filter(|s| s.target == "beacon")
        .map(|s| parse_datagram(&s.data[1..]))
        .collect();
    assert!(outcomes
        .iter()
        .any(|o| matches!(o, Ok(Datagram::Beacon(_)))));
    assert!(outcomes
        .iter()
        .any(|o| matches!(o, Ok(Datagram::Hello { .. }))));
    for err in [
        BeaconError::NotBeacon,
        BeaconError::BadPort,
        BeaconError::BadHello,
    ] {
        assert!(
            outcomes.contains(&Err(err)),
            "no beacon seed fails with {err:?}"
        );
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
