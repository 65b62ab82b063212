//! remex's integration tests: one binary, driving the real `remex` command over real
//! repositories written into temporary directories.

mod support;

mod cli;
mod digest;
mod hostile_plugins;
