//! End-to-end harness for sfsync.
//!
//! Drives real processes, no pgrx involved:
//!
//! * [`Emulator`]: a `sf-emulator` child process on a free port, with an admin helper for the
//!   `/__emulator/...` surface and a small Salesforce REST client ([`SfRest`]).
//! * [`Cluster`]: a throwaway PostgreSQL 15 cluster in `/tmp/sfsync-e2e-*`, with `sfsync` in
//!   `shared_preload_libraries` (the extension must be installed: `make install`).
//! * [`until`]: the polling helper for asynchronous sync, and the waits built on it:
//!   [`DbExt`] on a `postgres::Client` (`until_count`, `until_value`, `until_true`,
//!   `until_outbox_drained`, `until_worker` ...) and on [`SfRest`] (`until_record`,
//!   `until_records`, `until_gone`, `until_field`). They give up after [`WAIT`].
//! * [`Credentials`]: the emulator's connected app and user, and the `sfsync.add_connection`
//!   call for them ([`Emulator::connect_sql`]).
//!
//! Environment variables:
//!
//! | variable | effect |
//! |---|---|
//! | `SF_EMULATOR_BIN` | path of the `sf-emulator` binary (default: `<target>/release/sf-emulator`, then `<target>/debug/sf-emulator`) |
//! | `SFSYNC_E2E_KEEP=1` | keep cluster and emulator temp dirs (data, logs) after the test, and print their paths |
//! | `SFSYNC_E2E_NO_PRELOAD=1` | do not put `sfsync` in `shared_preload_libraries` (harness self-test without the extension) |
//! | `SFSYNC_E2E_STREAM=pubsub` | the shared setup (`tests/common`) streams changes of the `default` connection over the emulator's Pub/Sub API instead of CometD ([`stream_transport`]) |
//! | `PG_CONFIG` | `pg_config` whose `--bindir` is used when `/usr/lib/postgresql/15/bin` is absent |
//! | `SF_API_VERSION` | REST API version used by [`SfRest`] (default: newest from `GET /services/data/`, else `v61.0`) |

mod cluster;
mod db;
mod emulator;
mod util;
mod wait;

pub use cluster::{Cluster, ClusterOpts};
pub use db::{scalar, DbExt};
pub use emulator::{
    Credentials, Emulator, SfRest, DEFAULT_API_VERSION, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_PASSWORD, DEFAULT_USERNAME,
};
pub use util::{is_root, keep_artifacts, stream_transport, workspace_root};
pub use wait::{until, Probe, WAIT};

/// Re-exported so tests don't need their own dependency entries.
pub use postgres;
pub use serde_json;
pub use serde_json::{json, Value};
