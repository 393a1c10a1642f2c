//! The dbtls testbed: an in-memory Kubernetes API server, a cert-manager stand-in, the end-to-end
//! harness and the sandbox that runs the whole system on one machine.
pub mod apiserver;
pub mod bench;
pub mod certmanager;
pub mod harness;
pub mod mariadb;
pub mod sandbox;
pub mod sim_server;
pub mod workload_sim;
