//! The errors a node's handle reports.

use std::io;

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
    /// The node's id could not be drawn from the OS's randomness.
    #[error("cannot read a random node id from the OS: {0}")]
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
    /// A request argument is out of range; nothing was done.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
}

impl Error {
    pub(crate) fn zmq(action: &'static str) -> impl FnOnce(zmq::Error) -> Error {
        move |source| Error::Zmq { action, source }
    }
}
