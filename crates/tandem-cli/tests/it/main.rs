//! The `tandem` binary as users meet it, one test binary for all commands (linking tract and polars
//! once, not once per file).

mod common;

mod auto;
mod cli;
mod devices;
mod dynamics;
mod fit;
mod profile;
mod run;
mod store;
mod tune;
