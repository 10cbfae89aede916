//! Library users do not pay for the command line: every dependency only the `dkv`
//! binary needs is optional and enabled by the default feature `cli` alone, so
//! `default-features = false` builds the library without them.

/// The `[section]` of a manifest, as its lines.
fn section<'a>(manifest: &'a str, name: &str) -> Vec<&'a str> {
    let header = format!("[{name}]");
    manifest
        .lines()
        .skip_while(|l| l.trim() != header)
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with('['))
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect()
}

#[test]
fn cli_only_dependencies_are_optional_and_behind_the_cli_feature() {
    let manifest = include_str!("../Cargo.toml");
    let deps = section(manifest, "dependencies");
    let features = section(manifest, "features");
    let cli = features
        .iter()
        .find(|l| l.trim_start().starts_with("cli "))
        .expect("a cli feature");
    assert!(
        features
            .iter()
            .any(|l| l.replace(' ', "") == "default=[\"cli\"]"),
        "{features:?}"
    );
    for name in [
        "clap",
        "rustyline",
        "tracing-subscriber",
        "signal-hook",
        "nix",
    ] {
        let line = deps
            .iter()
            .find(|l| l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}.")))
            .unwrap_or_else(|| panic!("{name} is not a dependency"));
        assert!(line.contains("optional = true"), "{line}");
        assert!(cli.contains(&format!("\"dep:{name}\"")), "{cli}");
    }
    // The binary needs the feature; without it only the library builds.
    let bin = section(manifest, "[bin]");
    assert!(
        bin.iter()
            .any(|l| l.replace(' ', "") == "required-features=[\"cli\"]"),
        "{bin:?}"
    );
}
