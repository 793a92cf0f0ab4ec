//! The yoi event log: runtime-wide sequence numbers, a durable SQLite store, a bounded
//! in-memory window of recent events and a live broadcast.
//!
//! # Shape
//!
//! - [`EventLog`] is owned by one thread (the runtime's actor). It holds the only
//!   writing SQLite connection and appends whole batches of [`EventRecord`]s with
//!   [`EventLog::append`].
//! - [`LogReader`] (from [`EventLog::reader`]) is a cheap `Send + Sync + Clone` handle
//!   for every other thread or task: it [subscribes](LogReader::subscribe) to the live
//!   broadcast, and [replays](LogReader::replay) history from the window or, through its
//!   own read-only SQLite connections, from the store. SQLite runs in WAL mode, so store
//!   reads never block the writer and the writer never blocks them; the window is
//!   behind a lock that readers hold only to clone a bounded number of `Arc`s (at most
//!   [`WINDOW_SCAN_CHUNK`] entries per hold), so many concurrent replays delay an append
//!   by microseconds at most.
//!
//! # Append: group commit, publish after commit
//!
//! `append` gives the batch consecutive sequence numbers (runtime-wide, starting at 1),
//! writes it in ONE transaction and commits, and only then pushes the envelopes into the
//! window and the broadcast. Observers therefore only ever see committed events: a
//! sequence number that anyone has seen always names the same event, across crashes and
//! restarts. If the transaction fails, nothing is published and the batch's numbers are
//! handed out again to the next batch (nobody has seen them).
//!
//! # Store layout
//!
//! - `meta(key, value)`: `schema_version` ([`SCHEMA_VERSION`]), `epoch` (a random
//!   non-zero `u64` made when the store is created and kept for its life), `horizon`
//!   (see retention) and `chunk_bits` (see below).
//! - `blocks(first_seq INTEGER PRIMARY KEY, last_seq INTEGER, frames BLOB)`: the events,
//!   one row per block of up to 256 consecutive events (or about 1 MiB) of one append,
//!   each event a small binary frame (`seq`, `at_ms`, a delta flag, the worker id)
//!   around the JSON of its [`Event`](yoi_protocol::Event); the layout is in `block.rs`. Blocks never overlap,
//!   and every event of a block has `first_seq <= seq <= last_seq`. (Schemas 1 and 2
//!   stored one row per event, which cost SQLite a B-tree insert per event; opening such
//!   a store moves its events into blocks.)
//! - `worker_chunks(worker_id, chunk)` (`WITHOUT ROWID`, primary key `(worker_id, chunk)`):
//!   the index that finds one worker's events. The sequence numbers are cut into chunks
//!   of `2^chunk_bits` ([`LogConfig::index_chunk_bits`], 1,024 by default, fixed when the
//!   store is created); a row says "this worker has events in this chunk". An append
//!   writes a row only for a worker's first event in a chunk, in the same transaction
//!   as the events (the writer remembers the workers of the newest chunk), so the index
//!   costs a handful of rows per thousand events and is never behind. A worker-filtered
//!   store replay walks the worker's chunks in order and range-scans each. (Schema 1
//!   indexed every event in a `worker_seq` table, which cost about as much as storing
//!   the events; opening such a store migrates it.)
//! - `worker_index(worker_id UNIQUE, info)` and meta `index_seq`, `next_worker`,
//!   `next_run`: the *worker index*, every worker's latest info and the core's id
//!   counters, as the runtime's core reported them with the events
//!   ([`EventLog::append_indexed`]), in the same transaction. Opening a runtime reads
//!   it instead of replaying the log. It is current when `index_seq` is the last
//!   sequence number; see module `index`. `info` is the binary row of
//!   [`yoi_protocol::index_row`] (schema 3 stored JSON; such rows still read).
//!
//! Opening an existing store continues its sequence after the highest number ever
//! handed out. One `EventLog` at a time may hold a store: `open` takes an exclusive lock
//! on `<path>.lock` (released when the log is dropped or its process dies).
//!
//! # Durability
//!
//! [`Durability::Normal`] (the default) is `synchronous=NORMAL` in WAL mode: a committed
//! append survives the process being killed (`kill -9`, panic, OOM kill) because the WAL
//! frames are in the operating system's page cache; an operating-system crash or power
//! loss may lose the last transactions (never corrupting the store). [`Durability::Full`]
//! (`synchronous=FULL`) syncs the WAL on every commit, so committed appends survive power
//! loss too, at the price of one fsync per append.
//!
//! # Retention
//!
//! Restoring a runtime replays the whole log into a fresh core, so retention may not
//! delete what a transcript needs. With [`LogConfig::retain_events`] set, [`EventLog::prune`]
//! moves the *horizon* to `last_seq - retain_events` and deletes only *delta* events
//! ([`Event::is_delta`]: text, reasoning and tool-argument fragments) with
//! `seq <= horizon`. Complete events (`worker_created`, `input_accepted`, `*_done`,
//! `tool_call_ready`, `tool_result`, `step_finished`, `run_*`, …) are kept forever; the
//! `*_done` and `tool_call_ready` events carry the full text the deltas streamed, so
//! [`EventLog::read_for_restore`] still yields everything a core needs. (Only a run that
//! was still streaming when the process died, and whose deltas are older than the
//! horizon, restores with less partial output; restore closes such runs as interrupted
//! anyway. Keep `retain_events` well above what one run streams.) The horizon is
//! stored with the log. A replay after a cursor with `seq < horizon` fails with
//! [`ReplayError::Expired`] (its history is no longer complete); the client takes a fresh
//! snapshot instead. Pruning works in steps of at most [`LogConfig::prune_batch`] sequence
//! numbers per call, so one call never stalls the actor for long (it rewrites the blocks
//! that hold those deltas: the default 8,192 take about 1 ms), and a call with nothing to do touches neither the store nor
//! any lock. The owner calls it periodically (for example once a second, or after every
//! few thousand appended events) and again while [`Pruned::remaining`] is set.
//!
//! # Replay
//!
//! [`LogReader::replay`] returns the events after a cursor, optionally only one worker's
//! (events whose `worker_id` equals the filter; runtime-wide events without a worker are
//! not included), in pages of at most `limit` events. It is served from the window when
//! the window still holds `after.seq + 1`, otherwise from the store; both give identical
//! envelopes. A page is consistent with the last published sequence number at the time of
//! the call: events committed but not yet published are never returned.
//!
//! [`EventRecord`]: yoi_protocol::EventRecord
//! [`Event::is_delta`]: yoi_protocol::Event::is_delta

mod block;
mod checkpoint;
mod config;
mod error;
mod index;
mod log;
mod reader;
mod store;
mod window;

pub use config::{Durability, LogConfig};
pub use error::{LogError, ReplayError};
pub use index::{IndexCounters, IndexPage, IndexUpdate};
pub use log::{EventLog, Pruned};
pub use reader::{LogReader, LogStats, ReplayPage, WINDOW_SCAN_CHUNK};
pub use store::{DELTA_KINDS, SCHEMA_VERSION};

/// Re-exported for convenience: what the log stores and hands out.
pub use yoi_protocol::{Cursor, Envelope, EventRecord};
