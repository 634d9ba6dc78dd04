#![no_main]
//! SSTs: `decode_all` and the ranged reader never panic, and never
//! disagree: when a scan succeeds, every key it returned is found by `get`
//! with the same value (or `get` fails), and the scan is sorted.
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tidemark::internals::sst::{decode_all, SstReader};
use tidemark_fuzz::{prepare, reseal_sst};

fuzz_target!(|data: &[u8]| {
    let Some((obj, _)) = prepare(data, reseal_sst) else { return };
    let path = Path::from("compacted/x.sst");
    let whole = decode_all(&path, Bytes::from(obj.clone()));
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        store.put(&path, PutPayload::from(obj)).await.unwrap();
        let Ok(reader) = SstReader::open(store, path.clone(), None).await else {
            return;
        };
        let Ok(scan) = reader.scan(&(Bound::Unbounded, Bound::Unbounded)).await else { return };
        assert!(scan.windows(2).all(|w| w[0].0 < w[1].0), "scan is not sorted and unique");
        if let Ok((_, entries)) = &whole {
            let unsequenced: Vec<_> = entries.iter().map(|(k, _, v)| (k.clone(), v.clone())).collect();
            assert_eq!(unsequenced, scan, "decode_all and scan disagree");
        }
        for (k, v) in &scan {
            if let Ok(got) = reader.get(k).await {
                assert_eq!(got.as_ref(), Some(v), "get disagrees with scan on {k:?}");
            }
        }
    });
});
