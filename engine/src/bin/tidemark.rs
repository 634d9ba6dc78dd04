//! `tidemark`: a command-line client for a tidemark database.
//!
//! Reads (`get`, `scan`, `manifest`, `fsck`) never claim an epoch, so they do
//! not fence a running writer; `put` and `delete` open a writer.

use std::process::ExitCode;

use bytes::Bytes;
use clap::{Parser, Subcommand};
use object_store::ObjectStoreExt;
use tidemark::db::read_chain;
use tidemark::paths::Layout;
use tidemark::protocol::Protocol;
use tidemark::{Db, Error, Settings};

#[derive(Parser, Debug)]
#[command(name = "tidemark", about = "Read and write a tidemark database")]
struct Cli {
    /// Where the database lives: file:///dir, memory://, or s3://bucket/prefix.
    #[arg(long)]
    url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write KEY = VALUE and wait until it is durable.
    Put { key: String, value: String },
    /// Print the value of KEY (exit 1 if absent).
    Get { key: String },
    /// Delete KEY and wait until the delete is durable.
    Delete { key: String },
    /// Print keys and values in order, tab-separated.
    Scan {
        #[arg(long)]
        prefix: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Print the current manifest as JSON.
    Manifest,
    /// Check I1 and the checksum of every object the manifest references.
    Fsck,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tidemark: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, Error> {
    let (store, root) = tidemark::store_for_url(&cli.url)?;
    match cli.command {
        Command::Put { key, value } => {
            let db = Db::open_with(root, store, Settings::default()).await?;
            db.put(key, value).await?;
            db.close().await?;
        }
        Command::Delete { key } => {
            let db = Db::open_with(root, store, Settings::default()).await?;
            db.delete(key).await?;
            db.close().await?;
        }
        Command::Get { key } => {
            let db = Db::open_read_only(root, store).await?;
            match db.get(key.as_bytes()).await? {
                Some(v) => println!("{}", String::from_utf8_lossy(&v)),
                None => {
                    eprintln!("not found");
                    return Ok(ExitCode::from(1));
                }
            }
        }
        Command::Scan { prefix, limit } => {
            let db = Db::open_read_only(root, store).await?;
            let rows = match prefix {
                Some(p) => db.scan_prefix(Bytes::from(p)).await?,
                None => db.scan(..).await?,
            };
            for (k, v) in rows.iter().take(limit.unwrap_or(usize::MAX)) {
                println!("{}\t{}", String::from_utf8_lossy(k), String::from_utf8_lossy(v));
            }
        }
        Command::Manifest => {
            let db = Db::open_read_only(root, store).await?;
            let m = db.manifest().await;
            println!("{}", serde_json::to_string_pretty(&m).unwrap_or_default());
        }
        Command::Fsck => return fsck(store, root).await,
    }
    Ok(ExitCode::SUCCESS)
}

/// Checks I1 (every WAL the manifest requires exists) and the checksums of
/// every L0 SST and required WAL; prints one line per object checked.
async fn fsck(store: tidemark::sync::StdArc<dyn object_store::ObjectStore>, root: object_store::path::Path) -> Result<ExitCode, Error> {
    let layout = Layout::new(root.clone());
    let mut problems = 0;
    let manifest = match Db::open_read_only(root, store.clone()).await {
        Ok(db) => db.manifest().await,
        Err(e) => {
            // Opening reads the manifest, the WAL chain and every SST footer.
            println!("FAIL {e}");
            println!("fsck: 1 problem");
            return Ok(ExitCode::from(1));
        }
    };
    println!(
        "manifest v{} writer_epoch={} wal_id_last_seen={} replay_after_wal_id={} l0={}",
        manifest.version,
        manifest.writer_epoch,
        manifest.wal_id_last_seen,
        manifest.replay_after_wal_id,
        manifest.l0.len()
    );
    match read_chain(store.as_ref(), &layout, Protocol::Shipped, &manifest.view(), u64::MAX).await {
        Ok(chain) => {
            for (id, wal) in &chain.wals {
                println!("ok   wal {id} ({:?}, {} entries)", wal.header.kind, wal.entries.len());
            }
            println!("ok   I1: the WAL chain reaches {} (wal_id_last_seen={})", chain.plan.gap.saturating_sub(1), manifest.wal_id_last_seen);
        }
        Err(e) => {
            problems += 1;
            println!("FAIL {e}");
        }
    }
    for h in manifest.ssts() {
        let path = layout.sst(h.id);
        let checked = async {
            let bytes = store.get(&path).await?.bytes().await?;
            tidemark::sst::decode_all(&path, bytes).map(|(_, e)| e.len())
        };
        match checked.await {
            Ok(n) => println!("ok   sst {path} ({n} entries)"),
            Err(e) => {
                problems += 1;
                println!("FAIL sst {path}: {e}");
            }
        }
    }
    if problems == 0 {
        println!("fsck: no problems");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("fsck: {problems} problem(s)");
        Ok(ExitCode::from(1))
    }
}
