#![no_main]
//! `decode_wal`: never panics; what it accepts is sorted, unique, of an
//! epoch within `MAX_EPOCH` whose sequence numbers every entry has, and a
//! fence's `next_wal_id` is within `MAX_ID`.
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use object_store::path::Path;
use tidemark::internals::bounds::{seq_range, MAX_ID};
use tidemark::internals::protocol::WalKind;
use tidemark::internals::wal_object::decode_wal;
use tidemark_fuzz::{prepare, reseal_sst};

fuzz_target!(|data: &[u8]| {
    let Some((obj, _)) = prepare(data, reseal_sst) else { return };
    if let Ok(wal) = decode_wal(&Path::from("wal/1.sst"), Bytes::from(obj)) {
        assert!(wal.entries.windows(2).all(|w| w[0].0 < w[1].0), "accepted unsorted or repeated entries");
        let seqs = seq_range(wal.header.writer_epoch).expect("an epoch with sequence numbers");
        assert!(wal.entries.iter().all(|e| seqs.contains(&e.1)), "an entry outside its epoch's sequence numbers");
        if let WalKind::Fence { next_wal_id } = wal.header.kind {
            assert!(next_wal_id <= MAX_ID);
        }
    }
});
