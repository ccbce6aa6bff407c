//! AeroNode Inventory: holds seats for SkyLedger orders and answers on the event bus.

pub mod availability;
pub mod cli;
pub mod config;
pub mod db;
pub mod deadline;
pub mod domain;
pub mod handler;
pub mod inbound;
pub mod inventory;
pub mod lambda;
pub mod metrics;
pub mod outbound;
pub mod rds_iam;
pub mod seatmap;
pub mod telemetry;
