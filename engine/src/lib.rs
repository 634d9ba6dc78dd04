//! tidemark: an embedded key-value store on object storage.
//!
//! Every decision about write ordering lives in [`protocol`], a sans-IO core
//! that the Stateright model in `tidemark-model` executes exhaustively and the
//! runtime executes for real.
//!
//! ```no_run
//! # async fn demo() -> tidemark::Result<()> {
//! let db = tidemark::Db::open_url("memory://", tidemark::Settings::default()).await?;
//! db.put("hello", "world").await?;
//! assert_eq!(db.get("hello").await?.as_deref(), Some(&b"world"[..]));
//! db.close().await
//! # }
//! ```

pub mod batch;
pub mod cache;
pub mod commit;
pub mod db;
pub mod error;
pub mod fsck;
pub mod hedge;
pub mod iter;
pub mod manifest;
pub mod memtable;
pub mod metrics;
pub mod paths;
pub mod protocol;
pub mod retry;
pub mod settings;
pub mod sst;
pub mod store_check;
pub mod store_wrap;
pub mod sync;
pub mod trace;
pub mod wal_object;

#[cfg(feature = "test-util")]
pub mod testing;

pub use batch::{WriteBatch, WriteOptions};
pub use db::{Db, DbIterator, Snapshot};
pub use iter::{Direction, ScanOptions};
pub use error::{Error, Result};
pub use metrics::Metrics;
pub use settings::Settings;
pub use db::url::store_for_url;
