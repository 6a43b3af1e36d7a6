//! The pure core of queuectl: the job model, its states, the rules that move a
//! job between them, and input validation. Nothing here touches the disk, the
//! clock or the network: time is passed in, so every rule is testable with
//! plain tables of cases.

pub mod calendar;
pub mod deps;
pub mod duration;
pub mod echo;
pub mod environment;
pub mod job;
pub mod percent;
pub mod policy;
pub mod queue;
pub mod schedule;
pub mod spec;
pub mod state;
pub mod unique;

pub use job::{JobEdit, JobId, NewJob};
pub use policy::{AttemptOutcome, NextState, RetryPolicy};
pub use queue::{QueueChange, QueueName};
pub use spec::InputError;
pub use state::JobState;
pub use unique::{EnqueueOutcome, OnDuplicate, Unique, UniqueKey};
