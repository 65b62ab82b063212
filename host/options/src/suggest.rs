//! "Did you mean" for misspelled scopes, options, variables and flags.

/// The candidate nearest to `wanted`, when it is near enough to be a typo: at most one edit in
/// four characters (never fewer than two allowed), or a candidate that starts with `wanted`.
pub(crate) fn closest<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let allowed = (wanted.chars().count() / 4).max(2);
    candidates
        .into_iter()
        .map(|candidate| (distance(wanted, candidate), candidate))
        .filter(|&(d, candidate)| d <= allowed || is_longer_form(wanted, candidate))
        .min_by_key(|&(d, _)| d)
        .map(|(_, candidate)| candidate)
}

/// Whether `candidate` is `wanted` with more at its end, as `deadline_ms` is of `deadline`.
fn is_longer_form(wanted: &str, candidate: &str) -> bool {
    wanted.len() >= 4 && candidate.starts_with(wanted)
}

/// Levenshtein distance between `a` and `b`, compared case-insensitively.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    // `row[j]` is the distance from the prefix of `a` read so far to `b[..j]`.
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let replaced = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = replaced.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_names_only() {
        let known = [
            "remote_execution",
            "remote_cache_read",
            "remote_cache_write",
        ];
        assert_eq!(closest("remote_executon", known), Some("remote_execution"));
        assert_eq!(
            closest("remote_cache_wirte", known),
            Some("remote_cache_write")
        );
        assert_eq!(closest("colors", known), None);
        assert_eq!(
            closest("deadline", ["deadline_ms", "paths"]),
            Some("deadline_ms")
        );
        assert_eq!(closest("GLOBL", ["GLOBAL", "plugins"]), Some("GLOBAL"));
    }
}
