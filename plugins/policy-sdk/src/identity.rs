//! The policy's identity, `name@version`, as the bytes of a custom section.

/// `identity` as an array of exactly its length, the form a `#[link_section]` static needs.
pub const fn identity_section<const N: usize>(identity: &str) -> [u8; N] {
    let bytes = identity.as_bytes();
    let mut section = [0; N];
    let mut i = 0;
    while i < N {
        section[i] = bytes[i];
        i += 1;
    }
    section
}
