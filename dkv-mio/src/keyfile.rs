//! Key files for keyed clusters: reading one safely (owner-only, bounded, never
//! echoing key text) and drawing a fresh key from the OS.

use crate::error::Error;
use dkv_proto::seal::Keyring;
use std::io::Read;
use std::path::Path;
use zeroize::Zeroize;

/// The largest key file read: 16 keys with comments fit many times over.
pub const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// Reads and parses a key file (see [`Keyring::parse`]). Refuses a file that group
/// or others may read or write (`chmod 600 PATH`), one larger than
/// [`MAX_KEY_FILE_BYTES`], and one that is not UTF-8; errors name the line, never
/// the key text.
pub fn read_key_file(path: &Path) -> Result<Keyring, Error> {
    let refuse = |reason: String| Error::KeyFile {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| refuse(e.to_string()))?;
    let meta = file.metadata().map_err(|e| refuse(e.to_string()))?;
    if !meta.is_file() {
        return Err(refuse("not a regular file".into()));
    }
    let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions());
    if mode & 0o077 != 0 {
        return Err(refuse(format!(
            "group or others may access it (mode {:03o}); run chmod 600 on it",
            mode & 0o777
        )));
    }
    if meta.len() > MAX_KEY_FILE_BYTES {
        return Err(refuse(format!("larger than {MAX_KEY_FILE_BYTES} bytes")));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    let read = file
        .take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| refuse(e.to_string()));
    let parsed = match read {
        Err(err) => Err(err),
        Ok(_) => match std::str::from_utf8(&bytes) {
            Ok(text) => Keyring::parse(text).map_err(|e| refuse(e.to_string())),
            Err(_) => Err(refuse("not UTF-8 text".into())),
        },
    };
    bytes.zeroize();
    parsed
}

/// A fresh key as 64 lowercase hex digits, from 32 bytes of the OS's randomness.
pub fn generate_key_hex() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(Error::Random)?;
    let hex = bytes.iter().map(|b| format!("{b:02x}")).collect();
    bytes.zeroize();
    Ok(hex)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn file_with(text: &str, mode: u32) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        (dir, path)
    }

    fn reason(err: Error) -> String {
        match err {
            Error::KeyFile { reason, .. } => reason,
            other => panic!("not a key file error: {other}"),
        }
    }

    #[test]
    fn an_owner_only_file_of_keys_is_read_first_key_sending() {
        let other = generate_key_hex().unwrap();
        let (_dir, path) = file_with(&format!("# rotation\n{KEY}\n\n{other}\n"), 0o600);
        let ring = read_key_file(&path).unwrap();
        assert_eq!(ring.len(), 2);
        let first = dkv_proto::seal::Key::from_hex(KEY).unwrap().id();
        assert_eq!(ring.send_id(), first);
    }

    #[test]
    fn a_file_group_or_others_can_read_is_refused_with_the_fix() {
        for mode in [0o640, 0o604, 0o660] {
            let (_dir, path) = file_with(KEY, mode);
            let why = reason(read_key_file(&path).unwrap_err());
            assert!(why.contains("chmod 600"), "{mode:o}: {why}");
        }
    }

    #[test]
    fn a_bad_line_is_named_and_no_key_text_is_echoed() {
        let bad = format!("{KEY}\n{}z\n", &KEY[..63]);
        let (_dir, path) = file_with(&bad, 0o600);
        let why = reason(read_key_file(&path).unwrap_err());
        assert!(why.starts_with("line 2: "), "{why}");
        assert!(!why.contains(&KEY[..16]), "{why}");
    }

    #[test]
    fn missing_empty_binary_and_huge_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_key_file(&dir.path().join("absent")).is_err());
        let (_d1, empty) = file_with("# nothing\n", 0o600);
        assert!(reason(read_key_file(&empty).unwrap_err()).contains("no key"));
        let (_d2, binary) = file_with("", 0o600);
        std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
        assert!(reason(read_key_file(&binary).unwrap_err()).contains("UTF-8"));
        let (_d3, huge) = file_with(&"#".repeat(MAX_KEY_FILE_BYTES as usize + 1), 0o600);
        assert!(reason(read_key_file(&huge).unwrap_err()).contains("larger"));
        assert!(reason(read_key_file(dir.path()).unwrap_err()).contains("regular"));
    }

    #[test]
    fn generated_keys_are_fresh_hex_keys() {
        let (a, b) = (generate_key_hex().unwrap(), generate_key_hex().unwrap());
        assert_ne!(a, b);
        assert!(dkv_proto::seal::Key::from_hex(&a).is_ok());
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
    }
}
