//! Measures [`evaluate_repository`] on a generated repository: 1,000 BUILD files of 10 targets
//! each, with source globs, `__defaults__` and dependencies across directories.
//!
//! `cargo run --release -p remex-buildfile --example evaluate_many`

use std::error::Error;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use remex_buildfile::evaluate_repository;
use remex_model::{FieldSpec, FieldType, FieldValue, KindSpec};

const DIRECTORIES: usize = 1_000;
const TARGETS_PER_FILE: usize = 10;
const RUNS: usize = 5;

fn main() -> Result<(), Box<dyn Error>> {
    let repo = tempfile::tempdir()?;
    write_repository(repo.path())?;
    let kinds = kinds();

    let mut times: Vec<Duration> = Vec::new();
    let mut count = 0;
    for _ in 0..RUNS {
        let start = Instant::now();
        count = evaluate_repository(repo.path(), &kinds)?.len();
        times.push(start.elapsed());
    }
    times.sort();
    println!(
        "{DIRECTORIES} BUILD files, {count} targets: best {:?}, median {:?} over {RUNS} runs",
        times[0],
        times[RUNS / 2]
    );
    Ok(())
}

/// `pkgNN/modNNNN/` directories, each with a BUILD file and a few sources.
fn write_repository(root: &Path) -> std::io::Result<()> {
    fs::write(
        root.join("BUILD"),
        "__defaults__(python_tests = dict(timeout = 120))\n",
    )?;
    for i in 0..DIRECTORIES {
        let dir = root.join(directory(i));
        fs::create_dir_all(dir.join("data"))?;
        for name in ["a.py", "b.py", "test_a.py", "data/x.json", "data/y.json"] {
            fs::write(dir.join(name), "")?;
        }
        fs::write(dir.join("BUILD"), build_file(i))?;
    }
    Ok(())
}

fn directory(i: usize) -> String {
    format!("pkg{:02}/mod{i:04}", i / 100)
}

fn build_file(i: usize) -> String {
    let mut text = String::from("python_sources(name = \"lib\")\n");
    text.push_str("python_tests(name = \"tests\", dependencies = [\":lib\"])\n");
    let previous = if i > 0 {
        format!("\"//{}:lib\"", directory(i - 1))
    } else {
        String::new()
    };
    for t in 2..TARGETS_PER_FILE {
        text.push_str(&format!(
            "shell_command(\n    name = \"cmd{t}\",\n    command = \"process {t}\",\n    \
             sources = [\"data/*.json\", \"*.py\", \"!test_*.py\"],\n    \
             dependencies = [\":lib\", {previous}],\n    timeout = {t},\n)\n"
        ));
    }
    text
}

fn kinds() -> Vec<KindSpec> {
    let field = |name: &str, ty, default| FieldSpec {
        name: name.to_owned(),
        ty,
        required: false,
        default,
        help: String::new(),
    };
    let globs = |glob: &str| Some(FieldValue::TextList(vec![glob.to_owned()]));
    let kind = |name: &str, fields| KindSpec {
        name: name.to_owned(),
        help: String::new(),
        fields,
    };
    vec![
        kind(
            "python_sources",
            vec![field("sources", FieldType::Sources, globs("*.py"))],
        ),
        kind(
            "python_tests",
            vec![
                field("sources", FieldType::Sources, globs("test_*.py")),
                field("timeout", FieldType::Integer, None),
            ],
        ),
        kind(
            "shell_command",
            vec![
                field("command", FieldType::Text, None),
                field("sources", FieldType::Sources, None),
                field("timeout", FieldType::Integer, None),
            ],
        ),
    ]
}
