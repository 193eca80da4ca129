//! shmcollab supervisor: everything `shmcollab launch`, `status` and `stop`
//! do.
//!
//! * [`config`]: `config.toml`, validated with file:line:column errors, and
//!   partitioning/assignment into a [`shmcollab_runtime::plan::Plan`];
//! * [`launch`]: the supervisor process: session and registry, the master
//!   key handed down a pipe, one manager per LP, one epoll loop over pidfds,
//!   a signalfd and the output pipes, restarts (one_for_one with intensity),
//!   the ordered stop;
//! * [`placement`]: LPs and managers on separate CPUs when there are more
//!   processes than CPUs, and CPU-bound LPs let onto every CPU;
//! * [`status`]: reading the coordinator's view;
//! * [`stop`]: stopping a running collaboration through a pidfd of its
//!   supervisor;
//! * [`clean`]: removing what crashed sessions of ours left, reporting
//!   every entry passed over.
//!
//! Restart strategies beyond one_for_one, `after`, heartbeats and
//! reassignment come with the supervision issue.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod clean;
pub mod config;
pub mod launch;
pub mod placement;
pub mod status;
pub mod stop;
