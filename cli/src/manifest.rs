//! `tidemark manifest`: the current manifest as JSON, each id written the
//! way its object is named, so that a user can find it in the store.

use serde::Serialize;
use tidemark::{sst_name, wal_name, Checkpoint, CheckpointHolder, Manifest, SstHandle, SstOwner};

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
    writer_sst_floor: String,
    compactor_sst_floor: String,
    checkpoints: Vec<CheckpointJson>,
    retired: Vec<RetiredJson>,
}

/// A checkpoint: its id as 32 hex digits, the version and WAL range it pins.
#[derive(Serialize)]
struct CheckpointJson {
    id: String,
    holder: String,
    version: u64,
    replay_after_wal_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    wal_end: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at_ms: Option<u64>,
}

#[derive(Serialize)]
struct RetiredJson {
    sst: String,
    version: u64,
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
    owner: &'static str,
    epoch: u64,
    size: u64,
    /// The codec its footer records (`none`, `lz4`, `zstd`), or why it
    /// could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    compression: Option<String>,
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

fn sst(h: &SstHandle, compression: &Codecs) -> SstJson {
    let (first_key, first_key_base64) = text_or_base64(&h.first_key);
    let (last_key, last_key_base64) = text_or_base64(&h.last_key);
    SstJson {
        id: sst_name(h.id, h.owner, h.epoch),
        owner: owner(h.owner),
        epoch: h.epoch,
        size: h.size,
        compression: compression.get(&h.id).cloned(),
        first_key,
        first_key_base64,
        last_key,
        last_key_base64,
    }
}

fn owner(o: SstOwner) -> &'static str {
    match o {
        SstOwner::Writer => "writer",
        SstOwner::Compactor => "compactor",
    }
}

fn checkpoint(c: &Checkpoint) -> CheckpointJson {
    CheckpointJson {
        id: format!("{:032x}", c.id),
        holder: match c.holder {
            CheckpointHolder::Writer(e) => format!("writer {e}"),
            CheckpointHolder::Client => "client".to_string(),
        },
        version: c.version,
        replay_after_wal_id: wal_name(c.replay_after_wal_id),
        wal_end: c.wal_end.map(wal_name),
        expires_at_ms: c.expires_at_ms,
    }
}

/// An SST floor as the ULID it compares against.
fn ulid_or_zero(floor: u128) -> String {
    sst_name(floor, SstOwner::Writer, 0).split('-').next().unwrap_or_default().to_string()
}

/// The manifest as pretty JSON: SST ids as ULIDs (`compacted/<ULID>.sst`),
/// WAL ids as 20 digits (`wal/<id>.sst`). Versions and epochs are numbers.
/// Each SST's codec by id, as the CLI read it from the SSTs' footers.
pub type Codecs = std::collections::BTreeMap<u128, String>;

pub fn to_json(m: &Manifest, compression: &Codecs) -> serde_json::Result<String> {
    let sst = |h: &SstHandle| sst(h, compression);
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
        writer_sst_floor: ulid_or_zero(m.writer_sst_floor),
        compactor_sst_floor: ulid_or_zero(m.compactor_sst_floor),
        checkpoints: m.checkpoints.iter().map(checkpoint).collect(),
        retired: m.retired.iter().map(|r| RetiredJson { sst: sst_name(r.sst.id, r.sst.owner, r.sst.epoch), version: r.version }).collect(),
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
            owner: SstOwner::Writer,
            epoch: 3,
            size: 100,
            first_key: Bytes::from_static(b"a"),
            last_key: Bytes::from_static(b"\xff"),
        };
        let mut m = Manifest::empty();
        m.wal_id_last_seen = 42;
        m.fences = vec![7];
        m.l0 = vec![handle.clone()];
        let codecs = Codecs::from([(handle.id, "lz4".to_string())]);
        let text = to_json(&m, &codecs).expect("prints");
        assert!(text.find("\"version\"") < text.find("\"fences\""), "the engine's field order: {text}");
        let json: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(json["wal_id_last_seen"], "00000000000000000042");
        assert_eq!(json["fences"][0], "00000000000000000007");
        let id = json["l0"][0]["id"].as_str().expect("a string");
        assert_eq!(id.len(), 29, "a ULID, -w and the epoch: {id}");
        assert_eq!(id, sst_name(handle.id, SstOwner::Writer, 3));
        assert_eq!(json["l0"][0]["first_key"], "a");
        assert_eq!(json["l0"][0]["compression"], "lz4");
        assert_eq!(json["l0"][0]["last_key_base64"], "/w==");
    }
}
