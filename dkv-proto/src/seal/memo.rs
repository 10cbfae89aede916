//! Openings shared by the clones of one keyring: an item one core of a process has
//! opened, another core of it holding the same keys takes from here by comparing
//! bytes instead of decrypting again (the simulator delivers each broadcast to
//! every core). Only successful openings are kept, so a hit is exactly what
//! decrypting would have given; a forgery is decrypted, and refused, every time.

use super::frame::{Opened, OpenedHello, TAG_LEN};
use crate::FixedMap;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// What an item opened to.
#[derive(Clone, Debug)]
pub(super) enum Remembered {
    Frame(Opened),
    Hello(OpenedHello),
}

/// One opening: everything the result depends on besides the keys, which every
/// clone of the keyring shares.
#[derive(Debug)]
struct Entry {
    cluster: String,
    topic: Vec<u8>,
    item: Vec<u8>,
    opened: Remembered,
}

#[derive(Debug)]
struct Table {
    capacity: usize,
    /// By the item's tag (its last [`TAG_LEN`] bytes).
    entries: FixedMap<[u8; TAG_LEN], Entry>,
    /// Tags in the order they were kept, oldest first: forgotten beyond `capacity`.
    order: VecDeque<[u8; TAG_LEN]>,
    /// Items taken from here instead of decrypted.
    hits: u64,
}

/// The last `capacity` openings of a keyring's clones. Cloning it shares it.
#[derive(Clone, Debug)]
pub(super) struct Memo(Arc<Mutex<Table>>);

fn tag_of(item: &[u8]) -> Option<[u8; TAG_LEN]> {
    item.len()
        .checked_sub(TAG_LEN)
        .and_then(|at| item[at..].try_into().ok())
}

impl Memo {
    pub(super) fn new(capacity: usize) -> Memo {
        Memo(Arc::new(Mutex::new(Table {
            capacity,
            entries: FixedMap::default(),
            order: VecDeque::new(),
            hits: 0,
        })))
    }

    /// What `item`, received in `cluster` on `topic` (empty for a hello), opened to
    /// when a clone opened exactly these bytes.
    pub(super) fn recall(&self, cluster: &str, topic: &[u8], item: &[u8]) -> Option<Remembered> {
        let tag = tag_of(item)?;
        let mut table = self.0.lock().ok()?;
        let e = table.entries.get(&tag)?;
        let opened = (e.item == item && e.topic == topic && e.cluster == cluster)
            .then(|| e.opened.clone())?;
        table.hits += 1;
        Some(opened)
    }

    /// Keeps what `item` opened to, forgetting the oldest opening beyond capacity.
    pub(super) fn keep(&self, cluster: &str, topic: &[u8], item: &[u8], opened: Remembered) {
        let (Some(tag), Ok(mut table)) = (tag_of(item), self.0.lock()) else {
            return;
        };
        if table.capacity == 0 {
            return;
        }
        let entry = Entry {
            cluster: cluster.to_owned(),
            topic: topic.to_vec(),
            item: item.to_vec(),
            opened,
        };
        if table.entries.insert(tag, entry).is_none() {
            table.order.push_back(tag);
        }
        while table.order.len() > table.capacity {
            if let Some(old) = table.order.pop_front() {
                table.entries.remove(&old);
            }
        }
    }

    /// Openings kept, and items taken from them.
    #[cfg(test)]
    fn counts(&self) -> (usize, u64) {
        self.0.lock().map_or((0, 0), |t| (t.entries.len(), t.hits))
    }
}

#[cfg(test)]
mod tests {
    use crate::seal::{Cluster, HelloAddr, Key, Keyring, OpenError, Sealer, TAG_LEN};
    use crate::wire::v2::{TOPIC_ALL, TOPIC_TO};
    use crate::NodeId;
    use std::net::Ipv4Addr;

    fn counts(keys: &Keyring) -> (usize, u64) {
        keys.memo.as_ref().map_or((0, 0), |m| m.counts())
    }

    fn setup(capacity: usize) -> (Keyring, Cluster, Sealer) {
        let keys = Keyring::new(vec![Key::from_bytes([7; 32])])
            .unwrap()
            .sharing_openings(capacity);
        let cluster = Cluster::new("memo").unwrap();
        (keys, cluster, Sealer::new(NodeId(*b"sender-1"), 9))
    }

    #[test]
    fn a_clone_takes_what_another_opened_and_gets_the_same() {
        let (keys, cluster, mut sealer) = setup(8);
        let (a, b) = (keys.clone(), keys.clone());
        let frame = sealer
            .seal_frame(&keys, &cluster, TOPIC_ALL, b"body", 5)
            .unwrap();
        let first = a.open_frame(&cluster, TOPIC_ALL, &frame).unwrap();
        assert_eq!(counts(&keys), (1, 0));
        assert_eq!(b.open_frame(&cluster, TOPIC_ALL, &frame), Ok(first));
        assert_eq!(
            counts(&keys),
            (1, 1),
            "the second opening was decrypted again"
        );

        let addr = HelloAddr {
            port: 4242,
            ip: Ipv4Addr::new(10, 0, 0, 1),
        };
        let hello = sealer.seal_hello(&keys, &cluster, addr, 5).unwrap();
        let first = a.open_hello(&cluster, &hello).unwrap();
        assert_eq!(b.open_hello(&cluster, &hello), Ok(first));
        assert_eq!(first.addr, addr);
        assert_eq!(counts(&keys), (2, 2));
    }

    #[test]
    fn only_the_same_bytes_in_the_same_place_are_taken() {
        let (keys, cluster, mut sealer) = setup(8);
        let frame = sealer
            .seal_frame(&keys, &cluster, TOPIC_ALL, b"body", 5)
            .unwrap();
        keys.open_frame(&cluster, TOPIC_ALL, &frame).unwrap();
        // The same tag on other bytes: decrypted, and refused.
        let mut forged = frame.clone();
        let body_at = forged.len() - TAG_LEN - 1;
        forged[body_at] ^= 1;
        assert_eq!(
            keys.open_frame(&cluster, TOPIC_ALL, &forged),
            Err(OpenError::Forged)
        );
        // The same bytes sent to one node, received as sent to another: refused.
        let (to_a, to_b) = (
            [TOPIC_TO, b"node-aaa"].concat(),
            [TOPIC_TO, b"node-bbb"].concat(),
        );
        let to = sealer
            .seal_frame(&keys, &cluster, &to_a, b"body", 5)
            .unwrap();
        keys.open_frame(&cluster, &to_a, &to).unwrap();
        assert_eq!(
            keys.open_frame(&cluster, &to_b, &to),
            Err(OpenError::Forged)
        );
        // The same bytes in another cluster: refused before the memo is asked.
        let other = Cluster::new("other").unwrap();
        assert_eq!(
            keys.open_frame(&other, TOPIC_ALL, &frame),
            Err(OpenError::ForeignCluster)
        );
        assert_eq!(counts(&keys), (2, 0));
    }

    #[test]
    fn keyrings_built_apart_share_nothing_and_the_memo_is_bounded() {
        let (keys, cluster, mut sealer) = setup(2);
        let apart = Keyring::new(vec![Key::from_bytes([7; 32])]).unwrap();
        let frames: Vec<Vec<u8>> = (0..3)
            .map(|i| {
                sealer
                    .seal_frame(&keys, &cluster, TOPIC_ALL, &[i], 5)
                    .unwrap()
            })
            .collect();
        for f in &frames {
            keys.open_frame(&cluster, TOPIC_ALL, f).unwrap();
            apart.open_frame(&cluster, TOPIC_ALL, f).unwrap();
        }
        assert!(apart.memo.is_none());
        assert_eq!(counts(&keys), (2, 0), "kept beyond its capacity");
        // The oldest was forgotten: opening it again decrypts it.
        keys.open_frame(&cluster, TOPIC_ALL, &frames[0]).unwrap();
        keys.open_frame(&cluster, TOPIC_ALL, &frames[2]).unwrap();
        assert_eq!(counts(&keys), (2, 1));
    }
}
