//! A policy's identity, `name@version`: read from the custom section `remex-policy-sdk` writes
//! (`remex-policy-identity`), or made up from the file name and the component's hash for a
//! component without one.
//!
//! The section is found by walking the binary's sections by hand: it sits in the core module
//! nested in the component, and reading it needs only section headers, not a validator.

/// The custom section holding `name@version`.
const SECTION: &[u8] = b"remex-policy-identity";

/// The longest identity accepted; anything longer is ignored as garbage.
const MAX_IDENTITY_BYTES: usize = 128;

/// How deep components and modules may nest before the walk gives up.
const MAX_DEPTH: usize = 4;

/// The identity of the component `bytes`, loaded from `origin`, whose SHA-256 is `hash`.
pub(crate) fn identity(bytes: &[u8], origin: &str, hash: &[u8; 32]) -> String {
    find_section(bytes, 0)
        .and_then(|section| std::str::from_utf8(section).ok())
        .filter(|text| is_identity(text))
        .map_or_else(|| fallback(origin, hash), str::to_owned)
}

/// `name@version` with a short, printable name and version.
fn is_identity(text: &str) -> bool {
    let Some((name, version)) = text.split_once('@') else {
        return false;
    };
    let printable =
        |part: &str| !part.is_empty() && part.chars().all(|c| c.is_ascii_graphic() && c != '`');
    text.len() <= MAX_IDENTITY_BYTES && printable(name) && printable(version)
}

/// The file name without `.wasm`, at the first 12 hex digits of the component's hash, which
/// names exactly one build of it.
fn fallback(origin: &str, hash: &[u8; 32]) -> String {
    let file_name = origin.rsplit('/').next().unwrap_or(origin);
    let name = file_name.strip_suffix(".wasm").unwrap_or(file_name);
    format!("{name}@sha256:{}", &hex::encode(hash)[..12])
}

/// The content of the first custom section named [`SECTION`] in a module or component, or in
/// the modules and components nested in it.
fn find_section(binary: &[u8], depth: usize) -> Option<&[u8]> {
    let mut rest = binary.strip_prefix(b"\0asm")?.get(4..)?;
    let is_component = binary.get(4..8) != Some(&[1, 0, 0, 0]);
    while !rest.is_empty() {
        let (&id, after_id) = rest.split_first()?;
        let (size, after_size) = read_u32(after_id)?;
        let content = after_size.get(..usize::try_from(size).ok()?)?;
        rest = &after_size[content.len()..];

        let found = match id {
            0 => custom_section(content),
            // In a component, section 1 holds a core module and section 4 a component.
            1 | 4 if is_component && depth < MAX_DEPTH => find_section(content, depth + 1),
            _ => None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

fn custom_section(content: &[u8]) -> Option<&[u8]> {
    let (name_len, rest) = read_u32(content)?;
    let name_len = usize::try_from(name_len).ok()?;
    let name = rest.get(..name_len)?;
    (name == SECTION).then(|| &rest[name_len..])
}

/// An unsigned LEB128 number of at most 32 bits, and what follows it.
fn read_u32(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let mut value: u32 = 0;
    for (i, &byte) in bytes.iter().enumerate().take(5) {
        value |= u32::from(byte & 0x7f).checked_shl(7 * i as u32)?;
        if byte & 0x80 == 0 {
            return Some((value, &bytes[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn falls_back_to_the_file_name_and_hash() {
        let id = identity(
            b"\0asm\x0d\0\x01\0",
            "/repo/policies/mine.wasm",
            &[0xab; 32],
        );
        assert_eq!(id, "mine@sha256:abababababab");
    }

    #[test]
    fn reads_the_section_of_a_core_module() {
        let mut module = b"\0asm\x01\0\0\0".to_vec();
        let name = b"remex-policy-identity";
        let content = [&[name.len() as u8][..], name, b"demo@1.2.3"].concat();
        module.push(0);
        module.push(content.len() as u8);
        module.extend_from_slice(&content);
        assert_eq!(identity(&module, "x.wasm", &[0; 32]), "demo@1.2.3");
    }

    #[test]
    fn ignores_an_identity_that_is_not_name_at_version() {
        assert!(!is_identity("no-version"));
        assert!(!is_identity("@1.0"));
        assert!(!is_identity("evil\u{1b}[31m@1"));
        assert!(is_identity("no-network@0.1.0"));
    }
}
