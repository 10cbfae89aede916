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
