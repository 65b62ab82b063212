//! Interpreter constraints as Pants writes them: a list of alternatives, each a comma-separated
//! conjunction of `OP VERSION` clauses, optionally prefixed by an implementation name
//! (`CPython>=3.8,<4`). A version matches the list if it matches any alternative.

use std::fmt;

/// A Python version, `major.minor.micro`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub [u64; 3]);

impl Version {
    /// Parses `3`, `3.11` or `3.11.4` (missing parts are zero).
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = [0u64; 3];
        let mut count = 0;
        for (slot, part) in parts.iter_mut().zip(text.trim().split('.')) {
            *slot = part.parse().ok()?;
            count += 1;
        }
        let too_many = text.trim().split('.').count() > 3;
        (count > 0 && !too_many).then_some(Self(parts))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [major, minor, micro] = self.0;
        write!(f, "{major}.{minor}.{micro}")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Ge,
    Gt,
    Le,
    Lt,
    Compatible,
}

/// One clause, such as `>=3.8` or `==3.11.*`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Clause {
    op: Op,
    version: Version,
    /// How many parts were written; `==3.11.*` and `==3.11` compare only those.
    parts: usize,
}

impl Clause {
    fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let ops = [
            ("~=", Op::Compatible),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            (">=", Op::Ge),
            ("<=", Op::Le),
            (">", Op::Gt),
            ("<", Op::Lt),
        ];
        let (op, rest) = ops
            .iter()
            .find_map(|(symbol, op)| text.strip_prefix(symbol).map(|rest| (*op, rest)))?;
        let rest = rest.trim();
        let digits = rest.strip_suffix(".*").unwrap_or(rest);
        let parts = digits.split('.').count();
        let version = Version::parse(digits)?;
        Some(Self { op, version, parts })
    }

    fn matches(&self, version: Version) -> bool {
        let prefix = |v: Version| {
            let mut cut = v.0;
            cut.iter_mut().skip(self.parts).for_each(|p| *p = 0);
            Version(cut)
        };
        match self.op {
            Op::Eq => prefix(version) == self.version,
            Op::Ne => prefix(version) != self.version,
            Op::Ge => version >= self.version,
            Op::Gt => version > self.version,
            Op::Le => version <= self.version,
            Op::Lt => version < self.version,
            Op::Compatible => {
                let upper_parts = self.parts.saturating_sub(1).max(1);
                let same_prefix = version.0[..upper_parts] == self.version.0[..upper_parts];
                version >= self.version && same_prefix
            }
        }
    }
}

/// Alternatives of conjunctions of clauses; empty means any version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Constraints(Vec<Vec<Clause>>);

impl Constraints {
    /// Parses the `interpreter_constraints` field; `Err` carries the entry that does not parse.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let mut alternatives = Vec::new();
        for entry in entries {
            // An implementation name such as `CPython` may come first; only CPython is run.
            let clauses = entry.trim_start_matches(|c: char| c.is_ascii_alphabetic());
            let parsed: Option<Vec<Clause>> = clauses.split(',').map(Clause::parse).collect();
            alternatives.push(parsed.ok_or_else(|| entry.clone())?);
        }
        Ok(Self(alternatives))
    }

    /// Whether `version` satisfies the constraints.
    pub fn matches(&self, version: Version) -> bool {
        self.0.is_empty()
            || self
                .0
                .iter()
                .any(|all| all.iter().all(|clause| clause.matches(version)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(constraints: &[&str], version: &str) -> bool {
        let entries: Vec<String> = constraints.iter().map(|c| (*c).to_owned()).collect();
        let parsed = Constraints::parse(&entries).expect("constraints parse");
        parsed.matches(Version::parse(version).expect("version parses"))
    }

    #[test]
    fn lower_and_upper_bounds() {
        assert!(allows(&[">=3.8"], "3.11.4"));
        assert!(!allows(&[">=3.8"], "3.7.17"));
        assert!(allows(&["CPython>=3.8,<3.12"], "3.11.0"));
        assert!(!allows(&[">=3.8,<3.12"], "3.12.0"));
    }

    #[test]
    fn wildcards_and_alternatives() {
        assert!(allows(&["==3.11.*"], "3.11.7"));
        assert!(!allows(&["==3.11.*"], "3.10.7"));
        assert!(allows(&["==3.9.*", "==3.11.*"], "3.11.2"));
        assert!(allows(&["~=3.10"], "3.12.1"));
        assert!(!allows(&["~=3.10.2"], "3.11.0"));
        assert!(allows(&[], "2.7.18"));
    }

    #[test]
    fn rejects_nonsense() {
        let entries = vec![">=3.8".to_owned(), "three".to_owned()];
        assert_eq!(Constraints::parse(&entries), Err("three".to_owned()));
        assert_eq!(Version::parse("3.x"), None);
    }
}
