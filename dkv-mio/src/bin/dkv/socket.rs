//! Where a node's control socket lives, and owning it: the default path per user
//! and beacon port, a lock that says which live node serves a path, and removal
//! of the socket when the node stops.
//!
//! The lock is `flock` on `PATH.lock`, held for the node's life: the kernel drops
//! it when the process dies, so a socket file left by a killed node is known to
//! be stale and is replaced, while one served by a live node never is.

use nix::fcntl::{Flock, FlockArg};
use nix::sys::stat::Mode;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

/// The control socket of the node on `beacon_port` for this user:
/// `$XDG_RUNTIME_DIR/dkv-PORT.sock` when that variable names an absolute path,
/// else `/tmp/dkv-UID/dkv-PORT.sock`.
pub fn default_path(beacon_port: u16) -> PathBuf {
    let name = format!("dkv-{beacon_port}.sock");
    match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir.join(name),
        _ => private_tmp_dir().join(name),
    }
}

/// `/tmp/dkv-UID`.
fn private_tmp_dir() -> PathBuf {
    PathBuf::from(format!("/tmp/dkv-{}", nix::unistd::getuid()))
}

/// Why a socket could not be served.
#[derive(Debug)]
pub enum ServeError {
    /// Another live node serves this path.
    Held,
    /// Anything else (with what was being done).
    Io(String),
}

/// A served control socket; dropping it removes the socket file and its lock.
pub struct Served {
    pub listener: UnixListener,
    pub path: PathBuf,
    lock_path: PathBuf,
    _lock: Flock<File>,
}

impl Drop for Served {
    fn drop(&mut self) {
        // Removed while still locked, so no other node can have taken them over.
        let _ = fs::remove_file(&self.path);
        let _ = fs::remove_file(&self.lock_path);
    }
}

/// Takes `path`: its lock, then a fresh socket there with mode 0600 (a stale
/// socket file is replaced; anything else there is left alone and refused).
/// With `private_dir`, the directory `/tmp/dkv-UID` is created (mode 0700) if the
/// path is in it, and must be owned by this user and closed to others.
pub fn serve(path: &Path) -> Result<Served, ServeError> {
    let io_err = |what: &str, err: io::Error| ServeError::Io(format!("{what}: {err}"));
    if path.parent() == Some(private_tmp_dir().as_path()) {
        check_private_dir(&private_tmp_dir()).map_err(|e| io_err("private directory", e))?;
    }
    let mut lock_name = path.as_os_str().to_owned();
    lock_name.push(".lock");
    let lock_path = PathBuf::from(lock_name);
    let lock = lock(&lock_path)?;
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            // Left by a node that died: no live node holds the lock.
            fs::remove_file(path).map_err(|e| io_err("cannot remove the stale socket", e))?;
        }
        Ok(_) => {
            return Err(ServeError::Io(format!(
                "{} exists and is not a socket",
                path.display()
            )))
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(io_err("cannot look at the socket path", err)),
    }
    // Created with mode 0600 from the start: no moment when others may connect.
    let old = nix::sys::stat::umask(Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = bound.map_err(|e| io_err("cannot bind", e))?;
    let served = Served {
        listener,
        path: path.to_owned(),
        lock_path,
        _lock: lock,
    };
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .map_err(|e| io_err("cannot set mode 0600", e))?;
    Ok(served)
}

/// Locks `lock_path` (creating it), or says another node holds it. Retries if the
/// file was replaced between opening and locking it (its holder was removing it).
fn lock(lock_path: &Path) -> Result<Flock<File>, ServeError> {
    for _ in 0..10 {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(lock_path)
            .map_err(|e| ServeError::Io(format!("cannot open {}: {e}", lock_path.display())))?;
        let locked = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => locked,
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Err(ServeError::Held),
            Err((_, errno)) => {
                return Err(ServeError::Io(format!(
                    "cannot lock {}: {errno}",
                    lock_path.display()
                )))
            }
        };
        let same = match (locked.metadata(), fs::metadata(lock_path)) {
            (Ok(held), Ok(named)) => held.dev() == named.dev() && held.ino() == named.ino(),
            _ => false,
        };
        if same {
            return Ok(locked);
        }
    }
    Err(ServeError::Io(format!(
        "{} keeps changing under this node",
        lock_path.display()
    )))
}

use std::os::unix::fs::OpenOptionsExt;

/// Creates `dir` with mode 0700 if missing; it must be a directory (not a link)
/// owned by this user with no access for others.
fn check_private_dir(dir: &Path) -> io::Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(err),
    }
    let meta = fs::symlink_metadata(dir)?;
    let uid = nix::unistd::getuid().as_raw();
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
        return Err(io::Error::other(format!(
            "{} must be a directory owned by uid {uid} with mode 0700",
            dir.display()
        )));
    }
    Ok(())
}
