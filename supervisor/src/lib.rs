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
//! * [`status`]: reading the coordinator's view, and `stop`.
//!
//! Restart strategies beyond one_for_one, `after`, heartbeats and
//! reassignment come with the supervision issue.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod config;
pub mod launch;
pub mod placement;
pub mod status;
