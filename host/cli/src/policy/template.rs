//! The files of a new policy plugin, from the template in `plugins/templates/policy/`, for
//! `remex plugin new --policy NAME`.

use std::path::PathBuf;

/// The template's files: (path in the new crate, content with placeholders).
const FILES: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../../../../plugins/templates/policy/Cargo.toml.tmpl"),
    ),
    (
        ".cargo/config.toml",
        include_str!("../../../../plugins/templates/policy/cargo-config.toml.tmpl"),
    ),
    (
        "src/lib.rs",
        include_str!("../../../../plugins/templates/policy/src/lib.rs.tmpl"),
    ),
];

/// The files of a new policy crate named `name` (such as `no-network`), as (path relative to
/// the crate's directory, content). `sdk_dependency` is the value of the `remex-policy-sdk`
/// dependency in `Cargo.toml`, such as `{ path = "../remex/plugins/policy-sdk" }` or
/// `"0.1"`. The caller checks that `name` is a valid crate name.
pub fn files(name: &str, sdk_dependency: &str) -> Vec<(PathBuf, String)> {
    let crate_file = name.replace('-', "_");
    FILES
        .iter()
        .map(|(path, content)| {
            let content = content
                .replace("{{name}}", name)
                .replace("{{crate_file}}", &crate_file)
                .replace("{{sdk}}", sdk_dependency);
            (PathBuf::from(path), content)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_every_placeholder() {
        let files = files("only-ubuntu", "{ path = \"../sdk\" }");
        let paths: Vec<_> = files.iter().map(|(p, _)| p.display().to_string()).collect();
        assert_eq!(paths, ["Cargo.toml", ".cargo/config.toml", "src/lib.rs"]);
        for (path, content) in &files {
            assert!(
                !content.contains("{{"),
                "{} keeps a placeholder",
                path.display()
            );
        }
        let (_, lib) = &files[2];
        assert!(
            lib.contains("export_policy!(ThisPolicy, \"only-ubuntu\")"),
            "{lib}"
        );
        assert!(lib.contains("release/only_ubuntu.wasm"), "{lib}");
    }
}
