//! The errors a node's handle reports.

use std::io;
use std::path::PathBuf;

/// Why starting or talking to a node failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The UDP beacon socket could not be opened or bound; nothing was started.
    #[error("cannot open the beacon socket on 0.0.0.0:{port}: {source}")]
    BeaconSocket {
        /// The beacon port.
        port: u16,
        /// What the OS said.
        source: io::Error,
    },
    /// The socket that sends beacons from the fixed bind address could not be
    /// opened (is the address on this host?); nothing was started.
    #[error("cannot send beacons from {ip}: {source}")]
    BeaconSender {
        /// The bind address.
        ip: std::net::Ipv4Addr,
        /// What the OS said.
        source: io::Error,
    },
    /// A ZeroMQ call failed while starting the node; nothing was started.
    #[error("ZeroMQ could not {action}: {source}")]
    Zmq {
        /// What was being done.
        action: &'static str,
        /// What ZeroMQ said.
        source: zmq::Error,
    },
    /// The event loop (poll, waker or thread) could not be set up; nothing was
    /// started.
    #[error("cannot set up the event loop: {0}")]
    EventLoop(#[source] io::Error),
    /// The OS's randomness (for a node id, a seed or a key) could not be read.
    #[error("cannot read randomness from the OS: {0}")]
    Random(#[source] io::Error),
    /// The node has stopped (shut down, or its loop failed); the request was not
    /// carried out.
    #[error("the node has stopped")]
    Stopped,
    /// The configured timings do not make sense together (see
    /// [`Timings::validate`](dkv_proto::Timings::validate)); nothing was started.
    #[error("invalid timings: {0}")]
    InvalidTimings(#[from] dkv_proto::TimingsError),
    /// A wait ended before what it waited for happened.
    #[error("timed out waiting for {what}: {got} of {wanted}")]
    Timeout {
        /// What was waited for.
        what: &'static str,
        /// How many were wanted.
        wanted: usize,
        /// How many there were at the end.
        got: usize,
    },
    /// The configured limits do not make sense (see
    /// [`Limits::validate`](dkv_proto::Limits::validate)); nothing was started.
    #[error("invalid limits: {0}")]
    InvalidLimits(#[from] dkv_proto::LimitsError),
    /// A write's key or value is over the node's configured limits
    /// ([`Config::limits`](crate::Config::limits)); nothing was written.
    #[error("refused: {0}")]
    TooLarge(#[from] dkv_proto::WriteError),
    /// The process may not open as many files as the node needs (the hard
    /// `RLIMIT_NOFILE`, e.g. `ulimit -Hn`, is below it); nothing was started. Raise
    /// the hard limit or lower `limits.max_peers`.
    #[error(
        "the node needs up to {need} open files but the hard limit (ulimit -Hn) is {hard}: \
         raise it, or lower the peer limit"
    )]
    FdLimit {
        /// Descriptors the node may need ([`Config::fd_budget`](crate::Config::fd_budget)).
        need: u64,
        /// The hard limit.
        hard: u64,
    },
    /// A request argument is out of range; nothing was done.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// The data dir is held by another process (another node on the same dir?);
    /// nothing was started and the dir is untouched.
    #[error("the data dir {} is in use by another process (another dkv node?)", path.display())]
    DataDirLocked {
        /// The data dir.
        path: PathBuf,
    },
    /// The data dir was written by a newer dkv, in a format this one does not
    /// know; nothing was started and the dir is untouched.
    #[error(
        "the data dir {} has format version {found}, newer than the {supported} this dkv \
         reads: run a newer dkv on it, or use another dir",
        path.display()
    )]
    DataDirNewer {
        /// The data dir.
        path: PathBuf,
        /// The format version found.
        found: i64,
        /// The newest format version this build reads.
        supported: u32,
    },
    /// The data dir's file is damaged or is not a dkv store; nothing was started
    /// and the dir is untouched (move it away to start empty).
    #[error("the data dir {} is corrupt or not dkv's: {reason}", path.display())]
    DataDirCorrupt {
        /// The data dir.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The data dir could not be created, opened or read (permissions, a full or
    /// failing disk); nothing was started.
    #[error("cannot use the data dir {}: {reason}", path.display())]
    DataDir {
        /// The data dir.
        path: PathBuf,
        /// What the OS or SQLite said.
        reason: String,
    },
    /// The write was applied in memory but its commit to the data dir failed; the
    /// node stops, and the write may be lost with it.
    #[error("cannot commit to the data dir: {0}; the node stops")]
    Commit(String),
    /// The key file could not be used: unreadable, readable by group or others,
    /// too large, or not a list of keys (the reason names the line, never a key);
    /// nothing was started.
    #[error("cannot use the key file {}: {reason}", path.display())]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

impl Error {
    pub(crate) fn zmq(action: &'static str) -> impl FnOnce(zmq::Error) -> Error {
        move |source| Error::Zmq { action, source }
    }
}
