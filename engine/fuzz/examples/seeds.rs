//! Builds the seed corpora from a real database: WAL, SST (plain, LZ4 and
//! zstd blocks) and manifest objects written by the engine, each twice (mode byte 0: as is; 1:
//! re-sealed); for `db_open`, every object of its base database (see
//! `tidemark_fuzz::base`) behind the byte that chooses it, and crafted-field
//! mutations of them (`tidemark_fuzz::crafted`). Usage:
//! `cargo run --example seeds -- CORPUS_DIR`.
use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::ObjectStore;
use tidemark::{Compression, Db, Settings, WriteBatch};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let out = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "corpus".into()));
    let dir = std::env::temp_dir().join(format!("tidemark-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(&dir).unwrap());
    let settings = Settings::default().with_l0_sst_size_bytes(2048).with_max_unflushed_bytes(64 << 10);
    // Each round flushes with another codec, so the SST seeds hold plain,
    // LZ4 and zstd blocks.
    let codecs = [Compression::None, Compression::Lz4, Compression::Zstd { level: 3 }];
    for (round, codec) in codecs.into_iter().enumerate() {
        let db = Db::open_with("", store.clone(), settings.clone().with_compression(codec)).await.unwrap();
        for i in 0..60 {
            db.put(format!("key{round}-{i:03}"), "v".repeat(i % 40)).await.unwrap();
        }
        let mut batch = WriteBatch::new();
        batch.put("batch-a", "1");
        batch.delete("key0-001");
        db.write(batch).await.unwrap();
        if round < 2 {
            db.close().await.unwrap();
        } // the last writer is dropped without close: its WALs stay.
    }
    let mut n = 0;
    for (sub, target) in [("wal", "wal"), ("compacted", "sst"), ("manifest", "manifest")] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else { continue };
        let target_dir = out.join(target);
        std::fs::create_dir_all(&target_dir).unwrap();
        for e in entries.flatten() {
            let bytes = std::fs::read(e.path()).unwrap();
            for mode in [0u8, 1] {
                let mut seed = vec![mode];
                seed.extend_from_slice(&bytes);
                std::fs::write(target_dir.join(format!("{}-{mode}", e.file_name().to_string_lossy())), seed).unwrap();
                n += 1;
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    // db_open: [mode, slot, object]. The slots past the last WAL get a late
    // WAL of the last writer.
    let base = tidemark_fuzz::base::build().await;
    let target_dir = out.join("db_open");
    std::fs::create_dir_all(&target_dir).unwrap();
    let late = base.late_wal();
    for (i, slot) in base.slots.iter().enumerate() {
        let bytes = slot.original.clone().unwrap_or_else(|| late.clone());
        for mode in [0u8, 1] {
            let mut seed = vec![mode, i as u8];
            seed.extend_from_slice(&bytes);
            std::fs::write(target_dir.join(format!("slot{i}-{mode}")), seed).unwrap();
            n += 1;
        }
    }
    // Crafted-field mutations: one hostile field each, checksums valid.
    for c in tidemark_fuzz::crafted::seeds(&base) {
        let mut seed = vec![0u8, c.slot as u8];
        seed.extend_from_slice(&c.object);
        std::fs::write(target_dir.join(format!("crafted-{}", c.name)), seed).unwrap();
        n += 1;
    }
    println!("db_open base: {} objects, digest {:016x}", base.slots.len(), tidemark_fuzz::base::digest(&base.slots));
    println!("{n} seeds in {}", out.display());
}
