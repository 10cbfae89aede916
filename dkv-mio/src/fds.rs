//! The file descriptor budget: at start the soft `RLIMIT_NOFILE` is raised to what
//! the node may need (its limits decide how many peers and subscribers it keeps),
//! or the start is refused when the hard limit is too low. So running out of
//! descriptors is a configuration error reported at start, not a fault that hits a
//! running node (where it could look like a lost network).

#![allow(unsafe_code)]

use crate::error::Error;

/// Makes sure the process may open `need` descriptors: raises the soft limit to
/// `min(hard, 2 × need)` if it is below `need`; [`Error::FdLimit`] if the hard
/// limit is below `need`. A limit the OS cannot report is left alone.
pub(crate) fn ensure(need: u64) -> Result<(), Error> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` through the valid pointer given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        tracing::warn!(err = %std::io::Error::last_os_error(), "cannot read RLIMIT_NOFILE");
        return Ok(());
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
    let (soft, hard) = (limit.rlim_cur as u64, limit.rlim_max as u64);
    if soft >= need || limit.rlim_cur == libc::RLIM_INFINITY {
        return Ok(());
    }
    if hard < need && limit.rlim_max != libc::RLIM_INFINITY {
        return Err(Error::FdLimit { need, hard });
    }
    let want = need.saturating_mul(2);
    limit.rlim_cur = if limit.rlim_max == libc::RLIM_INFINITY {
        want as libc::rlim_t
    } else {
        want.min(hard) as libc::rlim_t
    };
    // SAFETY: setrlimit reads one valid `rlimit`.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(Error::FdLimit { need, hard: soft });
    }
    tracing::debug!(
        from = soft,
        to = ?limit.rlim_cur,
        "raised the open files limit"
    );
    Ok(())
}

/// True for the errors that mean this process (or the host) ran out of
/// descriptors or memory, not that the network is gone.
pub(crate) fn is_resource_error(err: &std::io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_need_passes_and_an_impossible_one_is_refused_with_the_numbers() {
        ensure(64).unwrap();
        match ensure(u64::MAX / 4) {
            Ok(()) => {} // no hard limit on this host
            Err(Error::FdLimit { need, .. }) => assert_eq!(need, u64::MAX / 4),
            Err(other) => panic!("{other}"),
        }
    }

    #[test]
    fn descriptor_and_memory_errors_are_resource_errors_and_route_errors_are_not() {
        for (errno, resource) in [
            (libc::EMFILE, true),
            (libc::ENFILE, true),
            (libc::ENOBUFS, true),
            (libc::ENOMEM, true),
            (libc::ENETUNREACH, false),
            (libc::EADDRNOTAVAIL, false),
        ] {
            let err = std::io::Error::from_raw_os_error(errno);
            assert_eq!(is_resource_error(&err), resource, "errno {errno}");
        }
    }
}
