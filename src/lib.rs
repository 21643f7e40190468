//! kraftd: a Kafka server in KRaft mode. Module map (dependencies point down):
//! cli -> server -> network -> api -> {broker, group, controller} -> metadata -> raft -> log.

pub mod api;
pub mod broker;
pub mod cli;
pub mod config;
pub mod controller;
pub mod group;
pub mod log;
pub mod metadata;
pub mod network;
pub mod protocol;
pub mod raft;
pub mod server;
