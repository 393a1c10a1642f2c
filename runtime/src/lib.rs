//! Code both operator binaries share that is neither a type nor a name: command-line flags,
//! logging, the metrics/health HTTP server, reconcile metrics, server-side apply, conditions,
//! leader election.
pub mod backoff;
pub mod cli;
pub mod coalesce;
pub mod conditions;
pub mod events;
pub mod finalizer;
pub mod http;
pub mod leader;
pub mod lean_store;
pub mod metrics;
pub mod ssa;
pub mod telemetry;
pub mod watch_backoff;
