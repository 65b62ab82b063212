//! remex's integration tests: one binary, driving the real `remex` command over real
//! repositories written into temporary directories.

mod support;

mod cli;
mod digest;
mod graph;
mod hostile_plugins;
mod main_job;
mod options;
mod plugin_management;
mod plugins_python;
mod policy;
mod server_action_cache;
mod server_bytestream;
mod server_cas;
mod server_crash;
mod server_execution;
mod server_fixture;
mod server_load;
mod server_security;
mod server_validation;
mod third_party;
