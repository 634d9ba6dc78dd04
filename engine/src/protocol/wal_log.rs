//! A writer's WAL sequence: `FreezeWal`, the upload window, `WalDurable`,
//! `Ack`, and the `wal_id_last_seen` a manifest may record.

use super::{DurableWatermark, Epoch, Protocol, WalId, MAX_ID};

/// The most WAL uploads any writer may have in flight.
///
/// Recovery relies on this bound: a writer only starts the upload of WAL `i`
/// while `i <= durable_wal_id + max_inflight`, so a fenced writer, whose
/// watermark can never pass the fence, never writes an id at or beyond
/// `fence + MAX_INFLIGHT_WAL_UPLOADS`, where the new writer's WALs begin.
pub const MAX_INFLIGHT_WAL_UPLOADS: u64 = 64;

/// The highest WAL id a writer uploads: a recovery after it fences at most
/// at `MAX_WAL_ID + 1` and jumps by at most `MAX_INFLIGHT_WAL_UPLOADS`, which
/// stays within [`MAX_ID`], the bound every decoder enforces. A writer that
/// reaches it uploads nothing more, so it never acknowledges a write that the
/// next recovery could not fence after.
pub const MAX_WAL_ID: WalId = MAX_ID - MAX_INFLIGHT_WAL_UPLOADS - 1;

/// One writer's WAL bookkeeping: ids handed out, and what is durable.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WalLog {
    protocol: Protocol,
    writer_epoch: Epoch,
    next_wal_id: WalId,
    max_inflight: u64,
    watermark: DurableWatermark,
}

impl WalLog {
    /// A log whose first WAL will be `next_wal_id`; everything before it is
    /// durable or not this writer's. `max_inflight` is clamped to
    /// `1..=MAX_INFLIGHT_WAL_UPLOADS`.
    pub fn new(protocol: Protocol, writer_epoch: Epoch, next_wal_id: WalId, max_inflight: u64) -> Self {
        let next_wal_id = next_wal_id.max(1);
        Self {
            protocol,
            writer_epoch,
            next_wal_id,
            max_inflight: max_inflight.clamp(1, MAX_INFLIGHT_WAL_UPLOADS),
            watermark: DurableWatermark::new(protocol, next_wal_id - 1),
        }
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    pub fn writer_epoch(&self) -> Epoch {
        self.writer_epoch
    }

    /// The id the next `FreezeWal` hands out.
    pub fn next_wal_id(&self) -> WalId {
        self.next_wal_id
    }

    /// `durable_wal_id`: the end of this writer's contiguous durable prefix.
    pub fn durable_wal_id(&self) -> WalId {
        self.watermark.durable_wal_id()
    }

    pub fn watermark(&self) -> &DurableWatermark {
        &self.watermark
    }

    pub fn max_inflight(&self) -> u64 {
        self.max_inflight
    }

    /// `FreezeWal`: the current buffer becomes the immutable WAL with this id.
    pub fn freeze(&mut self) -> WalId {
        let id = self.next_wal_id;
        // Saturating: past `MAX_WAL_ID` no upload starts (see `may_start_upload`).
        self.next_wal_id = self.next_wal_id.saturating_add(1);
        id
    }

    /// Guard of `UploadWal`: the upload of a frozen WAL may start only inside
    /// the window above the watermark. This bounds how far past a fence a
    /// zombie can ever write (see [`MAX_INFLIGHT_WAL_UPLOADS`]).
    pub fn may_start_upload(&self, wal_id: WalId) -> bool {
        wal_id < self.next_wal_id
            && wal_id <= self.durable_wal_id().saturating_add(self.max_inflight)
            && wal_id <= MAX_WAL_ID
    }

    /// Freeze policy: whether a WAL frozen now could start uploading at once.
    /// While the window is full a frozen WAL only waits, and every write that
    /// arrives meanwhile misses it and waits a whole upload more; so the
    /// writer keeps gathering into the buffer until this holds (at W = 1 this
    /// is SlateDB's "flush what gathered during the last flush").
    pub fn window_has_room(&self) -> bool {
        self.next_wal_id <= self.durable_wal_id().saturating_add(self.max_inflight)
    }

    /// `WalDurable`: the create of `wal_id` succeeded. Returns the new
    /// watermark if it advanced.
    pub fn on_wal_durable(&mut self, wal_id: WalId) -> Option<WalId> {
        debug_assert!(wal_id < self.next_wal_id, "WAL {wal_id} was never frozen");
        self.watermark.on_wal_durable(wal_id)
    }

    /// Guard of `Ack`: a durable write in `wal_id` may be acknowledged (I3).
    pub fn may_ack(&self, wal_id: WalId) -> bool {
        self.watermark.covers(wal_id)
    }

    /// Guard of the engine's `FlushL0`: a memtable whose writes end in WAL
    /// `last_wal_id` is recorded only once that WAL is durable, so no SST
    /// holds a write before its WAL is durable and every WAL at or below a
    /// manifest's `replay_after_wal_id` has landed.
    pub fn may_flush_memtable(&self, last_wal_id: WalId) -> bool {
        self.watermark.covers(last_wal_id)
    }

    /// The `wal_id_last_seen` the next manifest records.
    ///
    /// Shipped: the durable watermark, so the manifest only ever references
    /// WALs that exist (I1). The `at-freeze` mutant is SlateDB's bug: the id
    /// of the newest *frozen* WAL, whose upload may not have completed.
    pub fn wal_id_last_seen(&self) -> WalId {
        match self.protocol {
            #[cfg(feature = "mutants")]
            Protocol::AtFreeze => self.next_wal_id - 1,
            _ => self.durable_wal_id(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freeze_hands_out_consecutive_ids() {
        let mut log = WalLog::new(Protocol::Shipped, 1, 1, 4);
        assert_eq!((log.freeze(), log.freeze(), log.freeze()), (1, 2, 3));
        assert_eq!(log.next_wal_id(), 4);
        assert_eq!(log.durable_wal_id(), 0);
    }

    #[test]
    fn upload_window_is_bounded_above_the_watermark() {
        let mut log = WalLog::new(Protocol::Shipped, 1, 1, 2);
        for _ in 0..4 {
            log.freeze();
        }
        assert!(log.may_start_upload(1) && log.may_start_upload(2));
        assert!(!log.may_start_upload(3), "3 is outside the window of 2");
        assert!(!log.may_start_upload(5), "5 was never frozen");
        log.on_wal_durable(1);
        assert!(log.may_start_upload(3));
    }

    #[test]
    fn manifest_records_the_durable_watermark_not_the_frozen_id() {
        let mut log = WalLog::new(Protocol::Shipped, 1, 1, 4);
        log.freeze();
        log.freeze();
        log.on_wal_durable(2);
        assert_eq!(log.wal_id_last_seen(), 0, "WAL 1 is not durable yet (I1)");
        log.on_wal_durable(1);
        assert_eq!(log.wal_id_last_seen(), 2);
        assert!(log.may_ack(2) && !log.may_ack(3));
    }

    /// At the top of the id range `freeze` saturates
    /// instead of overflowing, and no upload starts beyond `MAX_WAL_ID`, so
    /// nothing is acknowledged that the next recovery could not fence after.
    #[test]
    fn ids_never_wrap_and_uploads_stop_at_the_bound() {
        let mut log = WalLog::new(Protocol::Shipped, 1, MAX_WAL_ID, 4);
        assert_eq!(log.freeze(), MAX_WAL_ID);
        assert!(log.may_start_upload(MAX_WAL_ID));
        assert_eq!(log.freeze(), MAX_WAL_ID + 1);
        assert!(!log.may_start_upload(MAX_WAL_ID + 1), "beyond MAX_WAL_ID");
        let mut top = WalLog::new(Protocol::Shipped, 1, u64::MAX, 4);
        assert_eq!((top.freeze(), top.freeze()), (u64::MAX, u64::MAX));
        assert!(!top.may_start_upload(u64::MAX));
    }

    #[cfg(feature = "mutants")]
    #[test]
    fn at_freeze_mutant_records_the_frozen_id() {
        let mut log = WalLog::new(Protocol::AtFreeze, 1, 1, 4);
        log.freeze();
        assert_eq!(log.wal_id_last_seen(), 1, "SlateDB's bug: WAL 1 is only frozen");
    }

    #[test]
    fn recovered_writer_starts_after_its_fence_jump() {
        let log = WalLog::new(Protocol::Shipped, 2, 70, 4);
        assert_eq!(log.durable_wal_id(), 69);
        assert_eq!(log.wal_id_last_seen(), 69);
        let clamped = WalLog::new(Protocol::Shipped, 2, 1, 1000);
        assert_eq!(clamped.max_inflight(), MAX_INFLIGHT_WAL_UPLOADS);
    }
}
