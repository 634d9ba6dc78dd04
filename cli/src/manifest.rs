//! `tidemark manifest`: the current manifest as JSON, each id written the
//! way its object is named, so that a user can find it in the store.

use serde::Serialize;
use tidemark::{sst_name, wal_name, Manifest, SstHandle};

use crate::codec::base64;

/// The manifest's fields in the order the engine declares them.
#[derive(Serialize)]
struct ManifestJson {
    version: u64,
    writer_epoch: u64,
    compactor_epoch: u64,
    token: u64,
    wal_id_last_seen: String,
    replay_after_wal_id: String,
    writer_closed: bool,
    fences: Vec<String>,
    l0: Vec<SstJson>,
    runs: Vec<RunJson>,
}

#[derive(Serialize)]
struct RunJson {
    id: u64,
    ssts: Vec<SstJson>,
}

/// A key as a string when it is UTF-8 (`first_key`), else as base64
/// (`first_key_base64`), as `scan --format json` prints keys.
#[derive(Serialize)]
struct SstJson {
    id: String,
    writer_epoch: u64,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_key_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_key_base64: Option<String>,
}

fn text_or_base64(bytes: &[u8]) -> (Option<String>, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (Some(s.to_string()), None),
        Err(_) => (None, Some(base64(bytes))),
    }
}

fn sst(h: &SstHandle) -> SstJson {
    let (first_key, first_key_base64) = text_or_base64(&h.first_key);
    let (last_key, last_key_base64) = text_or_base64(&h.last_key);
    SstJson { id: sst_name(h.id), writer_epoch: h.writer_epoch, size: h.size, first_key, first_key_base64, last_key, last_key_base64 }
}

/// The manifest as pretty JSON: SST ids as ULIDs (`compacted/<ULID>.sst`),
/// WAL ids as 20 digits (`wal/<id>.sst`). Versions and epochs are numbers.
pub fn to_json(m: &Manifest) -> serde_json::Result<String> {
    let view = ManifestJson {
        version: m.version,
        writer_epoch: m.writer_epoch,
        compactor_epoch: m.compactor_epoch,
        token: m.token,
        wal_id_last_seen: wal_name(m.wal_id_last_seen),
        replay_after_wal_id: wal_name(m.replay_after_wal_id),
        writer_closed: m.writer_closed,
        fences: m.fences.iter().map(|&id| wal_name(id)).collect(),
        l0: m.l0.iter().map(sst).collect(),
        runs: m.runs.iter().map(|r| RunJson { id: r.id, ssts: r.ssts.iter().map(sst).collect() }).collect(),
    };
    serde_json::to_string_pretty(&view)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn ids_are_printed_as_their_objects_are_named() {
        let handle = SstHandle {
            id: 0x0191_2345_6789_abcd_ef01_2345_6789_abcd,
            writer_epoch: 3,
            size: 100,
            first_key: Bytes::from_static(b"a"),
            last_key: Bytes::from_static(b"\xff"),
        };
        let mut m = Manifest::empty();
        m.wal_id_last_seen = 42;
        m.fences = vec![7];
        m.l0 = vec![handle.clone()];
        let text = to_json(&m).expect("prints");
        assert!(text.find("\"version\"") < text.find("\"fences\""), "the engine's field order: {text}");
        let json: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(json["wal_id_last_seen"], "00000000000000000042");
        assert_eq!(json["fences"][0], "00000000000000000007");
        let id = json["l0"][0]["id"].as_str().expect("a string");
        assert_eq!(id.len(), 26, "a ULID: {id}");
        assert_eq!(id, sst_name(handle.id));
        assert_eq!(json["l0"][0]["first_key"], "a");
        assert_eq!(json["l0"][0]["last_key_base64"], "/w==");
    }
}
