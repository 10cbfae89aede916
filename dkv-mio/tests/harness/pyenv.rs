//! The Python environment for the prototype fixture: a venv under the cargo target
//! directory (`target/pyenv`) with pyzmq installed from PyPI, created on first use.
//! `DKV_PYTHON` may name an interpreter that already has pyzmq instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The prototype fixture script.
pub fn prototype_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/prototype/prototype.py")
}

/// An interpreter that can import `zmq`, creating `target/pyenv` if needed (once per
/// test process). The error says why none is available; callers skip on it.
pub fn python() -> Result<PathBuf, String> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PYTHON.get_or_init(find_or_create).clone()
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
    }
}

fn has_zmq(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import zmq"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn find_or_create() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("DKV_PYTHON") {
        let p = PathBuf::from(p);
        return if has_zmq(&p) {
            Ok(p)
        } else {
            Err(format!("DKV_PYTHON={} cannot import zmq", p.display()))
        };
    }
    let venv = target_dir().join("pyenv");
    let python = venv.join("bin/python");
    if has_zmq(&python) {
        return Ok(python);
    }
    // Build in a private directory and rename it into place, so concurrent test
    // processes never see a half-made venv (a venv works from any path when run as
    // `bin/python -m ...`).
    let tmp = target_dir().join(format!("pyenv.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(target_dir()).map_err(|e| format!("create target dir: {e}"))?;
    run(Command::new("python3").arg("-m").arg("venv").arg(&tmp))?;
    let tmp_python = tmp.join("bin/python");
    let installed = run(Command::new(&tmp_python).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "pyzmq",
    ]));
    if let Err(e) = installed {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(format!("pip install pyzmq failed: {e}"));
    }
    if has_zmq(&python) {
        // Another process finished first.
        let _ = std::fs::remove_dir_all(&tmp);
        return Ok(python);
    }
    // Whatever is there is broken (e.g. an interrupted earlier run).
    let _ = std::fs::remove_dir_all(&venv);
    if std::fs::rename(&tmp, &venv).is_err() {
        // Another process won the race; use its venv.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    if has_zmq(&python) {
        Ok(python)
    } else {
        Err(format!(
            "{} cannot import zmq after install",
            python.display()
        ))
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} exited {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
