//! Every target accepts random bytes on stable, without libFuzzer: the targets'
//! own invariants hold for proptest's samples too (the fuzzer searches harder).

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn decode_holds_for_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        dkv_fuzz::decode(&data);
    }

    #[test]
    fn beacon_holds_for_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..64)) {
        dkv_fuzz::beacon(&data);
    }

    #[test]
    fn seal_holds_for_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..160)) {
        dkv_fuzz::seal(&data);
    }

    #[test]
    fn seal_holds_for_genuine_items_with_one_byte_changed(
        which in 0usize..5,
        at in any::<usize>(),
        xor in 1u8..=255,
    ) {
        let seeds: Vec<_> = dkv_fuzz::seeds::all()
            .into_iter()
            .filter(|s| s.target == "seal" && s.name.contains("genuine"))
            .collect();
        let mut data = seeds[which % seeds.len()].data.clone();
        let i = 1 + at % (data.len() - 1);
        data[i] ^= xor;
        dkv_fuzz::seal(&data);
    }

    #[test]
    fn node_holds_for_random_op_sequences(data in proptest::collection::vec(any::<u8>(), 0..1024)) {
        dkv_fuzz::node(&data);
    }

    #[test]
    fn node_holds_for_random_ops_with_short_timings(
        ops in proptest::collection::vec(any::<u8>(), 0..1024),
        timings in proptest::collection::vec(any::<u8>(), 11),
    ) {
        let mut data = vec![1u8];
        data.extend(timings);
        data.extend(ops);
        dkv_fuzz::node(&data);
    }
}
