//! How keys and values are written on one line and read back, and the few JSON
//! pieces the command line prints.
//!
//! A *token* is a bare word (no whitespace, not starting with `"`) or a quoted
//! string: `"` … `"` with the escapes `\\ \" \' \n \r \t \0`, `\xNN` (one byte)
//! and `\u{N…}` (one character). This is exactly what [`display_key`],
//! [`display_value`] and [`display_token`] print, so anything printed reads back.

use std::fmt::Write as _;

/// Why a line or token could not be read.
pub type ParseError = String;

/// Control characters, and the Unicode line and paragraph separators some
/// readers split lines on.
fn breaks_lines(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// True if `text` can be a bare token: non-empty, no whitespace or control
/// characters, not starting with `"`.
fn is_bare(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with('"')
        && !text.chars().any(|c| c.is_whitespace() || breaks_lines(c))
}

/// `bytes` as a quoted string that [`parse_token`] reads back exactly: text
/// escaped as Rust's `{:?}` does, bytes that are not UTF-8 as `\xNN`.
pub fn quote(bytes: &[u8]) -> String {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return format!("{text:?}");
    }
    let mut out = String::from("\"");
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                // `escape_debug` would also escape `'`; keep it as `{:?}` does.
                '\'' => out.push('\''),
                c => out.extend(c.escape_debug()),
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out.push('"');
    out
}

/// A key as one space-free token: as it is when that is unambiguous, else quoted
/// (`"a b"`, `"x\ny"`, `""`).
pub fn display_key(key: &str) -> String {
    display_token(key.as_bytes())
}

/// Any bytes as one space-free token (bare when possible, else [`quote`]d).
pub fn display_token(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) if is_bare(text) => text.to_owned(),
        _ => quote(bytes),
    }
}

/// A value as the rest of a line (what `get` prints and `set KEY VALUE` reads):
/// as it is when it is UTF-8 without control characters and cannot be taken for
/// something else (it does not start with `"` and is not `(nil)` or an `ERR`
/// line), else [`quote`]d.
pub fn display_value(value: &[u8]) -> String {
    match std::str::from_utf8(value) {
        Ok(text)
            if !text.chars().any(breaks_lines)
                && !text.starts_with('"')
                && text != "(nil)"
                && !text.starts_with("ERR") =>
        {
            text.to_owned()
        }
        _ => quote(value),
    }
}

/// Reads a value written as the rest of a line: quoted (then exactly one token)
/// or taken as it is.
pub fn parse_value(rest: &str) -> Result<Vec<u8>, ParseError> {
    if rest.starts_with('"') {
        let (value, after) = parse_token(rest)?;
        if !after.trim().is_empty() {
            return Err("text after the closing quote of a value".into());
        }
        Ok(value)
    } else {
        Ok(rest.as_bytes().to_vec())
    }
}

/// Reads one token from the start of `s` (leading whitespace skipped). Returns
/// its bytes and the rest of `s`, which is empty or starts with whitespace.
pub fn parse_token(s: &str) -> Result<(Vec<u8>, &str), ParseError> {
    let s = s.trim_start();
    let Some(body) = s.strip_prefix('"') else {
        let end = s.find(char::is_whitespace).unwrap_or(s.len());
        return Ok((s.as_bytes()[..end].to_vec(), &s[end..]));
    };
    let mut out = Vec::new();
    let mut chars = body.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => {
                let rest = &body[at + 1..];
                if rest.starts_with(|c: char| !c.is_whitespace()) {
                    return Err("a closing quote must end its word".into());
                }
                return Ok((out, rest));
            }
            '\\' => {
                let Some((_, escape)) = chars.next() else {
                    break;
                };
                match escape {
                    '\\' | '"' | '\'' => out.push(escape as u8),
                    'n' => out.push(b'\n'),
                    'r' => out.push(b'\r'),
                    't' => out.push(b'\t'),
                    '0' => out.push(0),
                    'x' => {
                        let hex: String = chars.by_ref().take(2).map(|(_, c)| c).collect();
                        let byte = (hex.len() == 2)
                            .then(|| u8::from_str_radix(&hex, 16).ok())
                            .flatten()
                            .ok_or_else(|| format!("bad escape \\x{hex}: want two hex digits"))?;
                        out.push(byte);
                    }
                    'u' => {
                        let mut hex = String::new();
                        let mut closed = false;
                        if chars.next().map(|(_, c)| c) == Some('{') {
                            for (_, c) in chars.by_ref().take(7) {
                                if c == '}' {
                                    closed = true;
                                    break;
                                }
                                hex.push(c);
                            }
                        }
                        let c = closed
                            .then(|| u32::from_str_radix(&hex, 16).ok())
                            .flatten()
                            .and_then(char::from_u32)
                            .ok_or("bad escape \\u: want \\u{1-6 hex digits} naming a character")?;
                        let mut buf = [0; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                    other => return Err(format!("unknown escape \\{other}")),
                }
            }
            c => {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    Err("a quoted word has no closing quote".into())
}

/// Reads a token that must be UTF-8 (a key or prefix).
pub fn parse_key(s: &str) -> Result<(String, &str), ParseError> {
    let (bytes, rest) = parse_token(s)?;
    let key = String::from_utf8(bytes).map_err(|_| "a key must be UTF-8 text".to_string())?;
    Ok((key, rest))
}

/// Every token of `s`.
pub fn tokens(mut s: &str) -> Result<Vec<Vec<u8>>, ParseError> {
    let mut out = Vec::new();
    while !s.trim_start().is_empty() {
        let (token, rest) = parse_token(s)?;
        out.push(token);
        s = rest;
    }
    Ok(out)
}

/// `text` as a JSON string.
pub fn json_str(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A value as JSON object members: `"value":"…"` when it is UTF-8, else
/// `"value_base64":"…"`.
pub fn json_value(value: &[u8]) -> String {
    match std::str::from_utf8(value) {
        Ok(text) => format!("\"value\":{}", json_str(text)),
        Err(_) => format!("\"value_base64\":\"{}\"", base64(value)),
    }
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_printed_key_and_value_reads_back() {
        let samples: Vec<Vec<u8>> = vec![
            b"plain".to_vec(),
            b"two words".to_vec(),
            b"".to_vec(),
            b"\"quoted\" start".to_vec(),
            b"x\ny\r\t\0z".to_vec(),
            b"back\\slash".to_vec(),
            b"it's".to_vec(),
            "h\u{e9} \u{2028} \u{301}".as_bytes().to_vec(),
            vec![0xff, 0xfe, b'a', 0x80, b' '],
            (0..=255u8).collect(),
            b"(nil)".to_vec(),
            b"ERR not an error".to_vec(),
        ];
        for bytes in &samples {
            let token = display_token(bytes);
            assert!(!token.contains(char::is_whitespace) || token.starts_with('"'));
            assert!(!token.contains('\n'), "{token}");
            let line = format!("{token} next");
            let (back, rest) = parse_token(&line).unwrap();
            assert_eq!(&back, bytes, "{token}");
            assert_eq!(rest, " next");
            let line = display_value(bytes);
            assert!(!line.contains('\n') && !line.contains('\r'), "{line}");
            assert_eq!(&parse_value(&line).unwrap(), bytes, "{line}");
            if let Ok(key) = std::str::from_utf8(bytes) {
                assert_eq!(parse_key(&display_key(key)).unwrap().0, key);
            }
        }
    }

    #[test]
    fn displays_are_plain_when_unambiguous() {
        assert_eq!(display_key("a"), "a");
        assert_eq!(display_key("a b"), "\"a b\"");
        assert_eq!(display_key(""), "\"\"");
        assert_eq!(display_value(b"hello world"), "hello world");
        assert_eq!(display_value(b""), "");
        assert_eq!(display_value(b"a\nb"), "\"a\\nb\"");
        assert_eq!(display_value(&[0xff, b'a']), "\"\\xffa\"");
        assert_eq!(display_value(b"(nil)"), "\"(nil)\"");
        assert_eq!(display_value(b"\"x"), "\"\\\"x\"");
    }

    #[test]
    fn typed_escapes_read_as_documented() {
        let (bytes, _) = parse_token(r#""\x41\u{e9}\'\"\\""#).unwrap();
        assert_eq!(bytes, "A\u{e9}'\"\\".as_bytes());
        for bad in [
            r#""open"#,
            r#""\q""#,
            r#""\x4""#,
            r#""\u{110000}""#,
            r#""a"b"#,
        ] {
            assert!(parse_token(bad).is_err(), "{bad}");
        }
        assert!(parse_key(r#""\xff""#).is_err());
        assert!(parse_value(r#""a" b"#).is_err());
        assert_eq!(parse_value("a \"b\"").unwrap(), b"a \"b\"");
        assert_eq!(
            tokens(r#"a "b c" "" d"#).unwrap(),
            vec![b"a".to_vec(), b"b c".to_vec(), vec![], b"d".to_vec()]
        );
    }

    #[test]
    fn json_strings_and_base64_are_standard() {
        assert_eq!(json_str("a\"\\\n\u{1}é"), "\"a\\\"\\\\\\n\\u0001é\"");
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(json_value(&[0xff]), "\"value_base64\":\"/w==\"");
        assert_eq!(json_value(b"v"), "\"value\":\"v\"");
    }
}
