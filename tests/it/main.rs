//! Integration tests: the built `queuectl` binary against real SQLite files,
//! real processes and real signals. One test binary, linked once.

mod support;

mod bench;
mod bulk;
mod calendar;
mod chaos;
mod cli;
mod completion;
mod concurrency;
mod containment;
mod copy;
mod crash;
mod deps;
mod display;
mod files;
mod fuzz_regressions;
mod input;
mod jobs_cli;
mod lifecycle;
mod lists;
mod manual;
mod metrics;
mod notify;
mod output;
mod pg_connect;
mod pg_harness;
mod pg_hosts;
mod queues;
mod readme;
mod schedule_fallback;
mod schedules;
mod secrets;
mod slots;
mod supervisor;
mod systemd;
mod unique;
mod web;
mod web_api;
mod web_browser;
mod web_systemd;
