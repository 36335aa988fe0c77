//! fpctl's integration tests: the real binary against real processes, one
//! module per area. One test binary, so the harness (`common`) compiles and
//! links once; `cargo test --release --test it NAME::` runs one area.

mod common;

mod analyze;
mod api;
mod chaos;
mod check;
mod cli_habits;
mod containers;
mod dashboard;
mod deep_path;
mod disabled;
mod env_exec;
mod export;
mod export_run;
mod fuzz;
mod graph_props;
mod house;
mod import;
mod init;
mod invalid_config;
mod mcp;
mod parallel_setup;
mod ports;
mod probes;
mod recovery;
mod redis;
mod reliability;
mod reload;
mod replace;
mod replicas;
mod schedule;
mod security;
mod setup_hooks;
mod smoke;
mod stack_logs;
mod start_progress;
mod status_surfaces;
mod stopping;
mod subscribe;
mod success_codes;
mod supervisor;
mod top;
mod watch;
