//! A remote get between dkv nodes, in the setup `dkv bench` measures
//! (`dkv_mio::bench::with_remote_asker`): it is answered, it costs one dkv `ask`
//! and no prototype question, and the asker then holds exactly what it got.

use dkv_mio::bench::{self, Workload};
use std::time::Duration;

#[test]
fn a_remote_get_between_dkv_nodes_is_one_ask_and_no_question() {
    let config = bench::loopback_config().unwrap();
    let workload = Workload {
        keys: 20,
        value_bytes: 10,
        window: 8,
        timeout: Duration::from_secs(60),
    };
    bench::with_remote_asker(&config, &workload, |asker| {
        let before = asker.stats()?.proto;
        assert_eq!(asker.get_local(Workload::key(5))?, None);
        let value = asker.get(Workload::key(5), Some(Duration::from_secs(30)))?;
        assert_eq!(value, Some(workload.value()));
        // Now held: a second get is answered locally, asking nobody.
        assert_eq!(asker.get_local(Workload::key(5))?, Some(workload.value()));
        assert_eq!(
            asker.get(Workload::key(5), Some(Duration::from_secs(30)))?,
            Some(workload.value())
        );
        let after = asker.stats()?.proto;
        assert_eq!(after.out_ask - before.out_ask, 1, "{after:?}");
        assert_eq!(after.out_question, 0, "{after:?}");
        // Key 0 (the setup's probe) and key 5; nothing else reached the asker.
        assert_eq!(asker.keys()?.len(), 2);
        Ok(())
    })
    .unwrap();
}
