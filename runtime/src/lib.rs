//! What both dbtls operators run, once: bootstrap (flags, logging, the metrics/health server,
//! leader election, shutdown, the CRD wait), shared watch caches, the server-side apply of owned
//! children with the preconditions that keep them owned, the SSA finalizer, the status writer
//! with transition Events, and the per-database backoff. Types and names are the contract's.
pub mod api_metrics;
pub mod backoff;
pub mod bootstrap;
pub mod caches;
pub mod children;
pub mod cli;
pub mod coalesce;
pub mod conditions;
pub mod crds;
pub mod diff;
pub mod events;
pub mod finalizer;
pub mod gauge_table;
pub mod http;
pub mod in_flight;
pub mod key;
pub mod leader;
pub mod lean_store;
pub mod metrics;
pub mod pods;
pub mod ssa;
pub mod status;
pub mod sweep;
pub mod telemetry;
pub mod watch_backoff;
