//! cutover's job queue workers: claim jobs from the store's durable priority queue (see
//! `cutover_store`'s queue and [`cutover_core::queue`] for the order, aging and retry rules), run
//! them through a registry of job kinds, keep their leases alive, record their results. The first
//! job kind runs QA checks (`[[checks]]`); the [`pipeline`] kinds run `ship`, `deploy`,
//! `promote` and `rollback` as child `cutover` processes.

pub mod check;
mod check_job;
pub mod pipeline;
mod worker;

pub use check_job::{CHECK_KIND, CheckHandler, CheckRun, check_job, run_checks};
pub use worker::{
    JobError, JobHandler, Ran, Registry, Shutdown, ShutdownListener, Worker, WorkerConfig,
    WorkerStats, run_workers, shutdown_signal,
};
