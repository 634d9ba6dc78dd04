//! What one schedule does, chosen by its seed (and by `crash-check`'s
//! flags): faults, zombies, shared keys, racing openers, the lifecycle
//! (compaction, GC and its clock), readers, held listings and hedges.

use std::str::FromStr;
use std::time::Duration;

use object_store::ObjectStore;
use tidemark::internals::protocol::Protocol;
use tidemark::internals::sync::Arc;
use tidemark::testing::RandomFaults;
use tidemark::HedgeSettings;

/// The faults of a faulty schedule: one call in twenty fails transiently
/// (with `max_retries` 2, about one in 8,000 fails for good), one
/// conditional put in five lands and reports a conflict.
pub const FAULTS: RandomFaults = RandomFaults { transient: 0.05, ambiguous: 0.2 };

/// The longest delay of a read when reads are delayed: a few chaos ticks, so
/// that an upload can land and an L0 flush finish while a read waits.
pub const MAX_READ_DELAY: Duration = Duration::from_millis(2);

/// Crash ticks per operation of the seeds that delay reads. Measured against
/// the `scan-without-snapshot` mutant (2,000 seeds, all delaying reads): 3
/// caught it in 1 seed, 6 in 29, 12 in 102, 24 in 166. Such a seed costs
/// about 2.5 times a default one, hence one seed in eight.
pub const LATE_CRASH_TICKS_PER_OP: u32 = 24;

/// `gc_min_age` of the aged lifecycle schedules: above the compactor's
/// commit allowance (30 s, `may_record_sst` is checked against now + 30 s),
/// so compactions can be recorded, and reached within a round by the
/// clock's jumps ([`MAX_JUMP`]) and between rounds by the store's rest.
pub const AGED_MIN_AGE: Duration = Duration::from_secs(40);
/// The largest jump of the clock within a process: below the 10 s a
/// compaction output may age before it can no longer be recorded at
/// [`AGED_MIN_AGE`], and far below the 30 s a manifest create is allowed
/// (the design's bound on a pause between `may_record_sst` and the create).
pub const MAX_JUMP: Duration = Duration::from_secs(8);
/// How long the store rests between two processes of an aged schedule: what
/// one process left is old (past [`AGED_MIN_AGE`]) when the next one starts.
pub const REST: Duration = Duration::from_secs(45);

/// A bug planted in the engine (outside the protocol core, feature
/// `mutants`), selected by name (`crash-check --mutant NAME`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineMutant {
    /// A scan reads L0 before the memtables (not one consistent view).
    ScanWithoutSnapshot,
    /// L0 SSTs named from the manifest, not fresh: a zombie takes the name.
    SstNamesWithoutEpoch,
    /// A completed WAL upload never frees its window slot.
    WindowNeverFreed,
    /// The compactor records its run before the output uploads complete.
    CompactBeforeUpload,
    /// Every compaction drops tombstones, not only into the bottom run.
    TombstonesAboveBottom,
    /// A hedged WAL create's `AlreadyExists` is taken as ours, unread.
    HedgeExistsIsOurs,
    /// GC plans from the latest tree without its retired SSTs.
    GcForgetsRetired,
    /// GC plans from the latest tree without its checkpoints.
    GcForgetsCheckpoints,
    /// The writer's pin ignores the older views this process holds.
    PinIgnoresHeldViews,
    /// A following reader's poll adopts the newest manifest without the
    /// WALs past it.
    FollowerSkipsWals,
    /// A writer whose compactor a standalone one fenced still holds its
    /// memtables at the L0 limit, waiting on a compactor that stopped.
    FencedCompactorHoldsL0,
    /// A compaction keeps only the newest input's version of a key, losing
    /// older merge operands and the value they fold into.
    CompactionDropsOperands,
    /// A compaction above the bottom run drops an expired value instead of
    /// tombstoning it, so an older value comes back.
    ExpiredValuesVanish,
}

impl EngineMutant {
    pub const ALL: [EngineMutant; 13] = [
        EngineMutant::ScanWithoutSnapshot,
        EngineMutant::SstNamesWithoutEpoch,
        EngineMutant::WindowNeverFreed,
        EngineMutant::CompactBeforeUpload,
        EngineMutant::TombstonesAboveBottom,
        EngineMutant::HedgeExistsIsOurs,
        EngineMutant::GcForgetsRetired,
        EngineMutant::GcForgetsCheckpoints,
        EngineMutant::PinIgnoresHeldViews,
        EngineMutant::FollowerSkipsWals,
        EngineMutant::FencedCompactorHoldsL0,
        EngineMutant::CompactionDropsOperands,
        EngineMutant::ExpiredValuesVanish,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EngineMutant::ScanWithoutSnapshot => "scan-without-snapshot",
            EngineMutant::SstNamesWithoutEpoch => "sst-names-without-epoch",
            EngineMutant::WindowNeverFreed => "window-never-freed",
            EngineMutant::CompactBeforeUpload => "compact-before-upload",
            EngineMutant::TombstonesAboveBottom => "tombstones-above-bottom",
            EngineMutant::HedgeExistsIsOurs => "hedge-exists-is-ours",
            EngineMutant::GcForgetsRetired => "gc-forgets-retired",
            EngineMutant::GcForgetsCheckpoints => "gc-forgets-checkpoints",
            EngineMutant::PinIgnoresHeldViews => "pin-ignores-held-views",
            EngineMutant::FollowerSkipsWals => "follower-skips-wals",
            EngineMutant::FencedCompactorHoldsL0 => "fenced-compactor-holds-l0",
            EngineMutant::CompactionDropsOperands => "compaction-drops-operands",
            EngineMutant::ExpiredValuesVanish => "expired-values-vanish",
        }
    }

    /// Sets the mutant's flag in `s`.
    pub fn apply(self, s: &mut tidemark::Settings) {
        match self {
            EngineMutant::ScanWithoutSnapshot => s.scan_without_snapshot = true,
            EngineMutant::SstNamesWithoutEpoch => s.sst_names_without_epoch = true,
            EngineMutant::WindowNeverFreed => s.window_never_freed = true,
            EngineMutant::CompactBeforeUpload => s.compact_before_upload = true,
            EngineMutant::TombstonesAboveBottom => s.tombstones_above_bottom = true,
            EngineMutant::HedgeExistsIsOurs => s.hedge_exists_is_ours = true,
            EngineMutant::GcForgetsRetired => s.gc_forgets_retired = true,
            EngineMutant::GcForgetsCheckpoints => s.gc_forgets_checkpoints = true,
            EngineMutant::PinIgnoresHeldViews => s.pin_ignores_held_views = true,
            EngineMutant::FollowerSkipsWals => s.follower_skips_wals = true,
            EngineMutant::FencedCompactorHoldsL0 => s.fenced_compactor_holds_l0 = true,
            EngineMutant::CompactionDropsOperands => s.compaction_drops_operands = true,
            EngineMutant::ExpiredValuesVanish => s.expired_values_vanish = true,
        }
    }
}

impl FromStr for EngineMutant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        EngineMutant::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| format!("no engine mutant named {s}"))
    }
}

/// How GC ages objects in a schedule that runs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GcAge {
    /// `gc_min_age` 0: only the latest manifest is kept; safe for one
    /// process whose GC pins its own outputs and readers (no zombie).
    Zero,
    /// [`AGED_MIN_AGE`], the clock jumping within processes and the store
    /// resting between them, so objects age past it during a schedule.
    Aged,
    /// This `gc_min_age` on the paused clock, without jumps or rests
    /// (`crash-check --gc-min-age-ms`): a few milliseconds age objects
    /// while a round runs.
    Fixed(Duration),
    /// The wall-clock modes: 0, or an hour beside a zombie (nothing old).
    Wall,
}

/// Where compaction runs in a schedule that compacts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompactorPlace {
    /// The writer's own compactor (`Settings::compactor`).
    Writer,
    /// A compactor process of its own (`tidemark::compact`, passes at seeded
    /// times); the writers run with their compactor off.
    Standalone,
    /// Both: the standalone one claims the next compactor epoch and fences
    /// the writer's, which must neither hang its writers nor lose a write.
    Both,
}

impl CompactorPlace {
    pub fn name(self) -> &'static str {
        match self {
            CompactorPlace::Writer => "writer",
            CompactorPlace::Standalone => "standalone",
            CompactorPlace::Both => "both",
        }
    }
}

impl FromStr for CompactorPlace {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [CompactorPlace::Writer, CompactorPlace::Standalone, CompactorPlace::Both]
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("no compactor place named {s} (writer, standalone or both)"))
    }
}

/// What one schedule does.
#[derive(Clone, Debug)]
pub struct Config {
    pub seed: u64,
    /// Concurrent writers per process.
    pub writers: usize,
    /// Operations per writer per round.
    pub ops: usize,
    /// Crashes (rounds) per schedule.
    pub rounds: usize,
    /// The store operation at which round 0 crashes; `None` picks one by seed.
    pub crash_op: Option<u64>,
    /// Keep the old `Db` running while a new one opens (I5).
    pub zombies: bool,
    pub protocol: Protocol,
    /// A bug planted in the engine, if any.
    pub mutant: Option<EngineMutant>,
    /// Run on the wall clock instead of a paused one: timing varies from run
    /// to run (more interleavings over many runs, but a seed no longer
    /// replays exactly).
    pub wall_clock: bool,
    /// `Settings::burst_gap` of every process: zero on odd seeds (many small
    /// WALs, more interleavings), the engine's default on even ones.
    pub burst_gap: Duration,
    /// The longest read delay of the process's `FaultStore` (each read waits
    /// a seeded time up to it), or zero for reads that answer at once. On for
    /// one seed in eight (seeds 14 and 15 mod 16, one of each `burst_gap`): a
    /// delayed read spans other tasks' store calls, so a read that is not one
    /// consistent state (a scan that missed an L0 flush) is seen.
    pub read_delay: Duration,
    /// A seeded crash comes within this many chaos ticks (0.5 ms each) per
    /// operation of a writer: 3 by default, which crashes most rounds early
    /// in the write protocol; [`LATE_CRASH_TICKS_PER_OP`] for seeds that
    /// delay reads, so that memtables reach L0 and reads overlap L0 flushes.
    pub crash_ticks_per_op: u32,
    /// Run the compactor and GC in every process (seeds 2 mod 5, every seed
    /// with `crash-check --lifecycle`): crashes then land during
    /// compactions, GC passes and their manifest updates. Trace conformance
    /// does not replay those steps yet, so these schedules are checked by
    /// the oracle only.
    pub compaction: bool,
    /// Where compaction runs when `compaction` is on: in the writer, in a
    /// process of its own, or both (a third of the seeds each).
    pub compactor: CompactorPlace,
    /// How GC ages objects when `compaction` is on.
    pub gc_age: GcAge,
    /// `Settings::gc_interval` when `compaction` is on.
    pub gc_interval: Duration,
    /// Seeded store faults in every live process ([`FAULTS`]): transient
    /// errors on any call (retried by the engine's `RetryStore`), creates
    /// that land and report `AlreadyExists`, conditional updates that land
    /// and report `Precondition`, and reads and listings delayed up to
    /// [`MAX_READ_DELAY`]. On for seeds 3 mod 5 (half of them with zombies),
    /// or for every seed with `crash-check --faults`.
    pub faults: Option<RandomFaults>,
    /// Writers also write and read keys they share (`shared::PREFIX`), so
    /// the writers of a process, and a zombie and its successor, overwrite
    /// each other: seeds 1 mod 3.
    pub shared_keys: bool,
    /// After the last recovery check, this many processes open the store at
    /// once and race (0: none): seeds 7 mod 10 race 2 to 16 openers.
    pub racing_openers: usize,
    /// Each live process also runs a read-only handle (`Db::open_read_only`)
    /// that reads every writer's keys, holds its view and reads it again;
    /// every recovery opens one too.
    pub readers: bool,
    /// Listings are held in flight and answered late, with what the store
    /// held when they were asked (`FaultStore::hold_listings`), and manifest
    /// and WAL reads are held until released: GC's listings interleave with
    /// manifest commits, recovery's with late uploads.
    pub held_listings: bool,
    /// Hedged WAL creates and reads with a short threshold, so hedges fire
    /// while uploads are held (`Settings::hedge`); `None`: the engine's
    /// default (20 ms, which held uploads rarely reach).
    pub hedge: Option<HedgeSettings>,
    /// The writers' processes keep no block cache (`block_cache_bytes` 0):
    /// every read through a held view goes to the store, so an SST deleted
    /// under it is seen (a cached block would hide it). Half of the seeds,
    /// three in four with `--lifecycle`.
    pub no_block_cache: bool,
    /// How long views are held past the work that made them: each writer
    /// keeps its snapshot and scan up to this long after its last operation
    /// (flushes, compactions, GC passes and clock jumps go on meanwhile)
    /// before it reads them a last time, and a read-only handle pauses up
    /// to half of it before each read. 2 ms; 20 ms with `--lifecycle`.
    pub linger: Duration,
    /// A tree that changes often (`--lifecycle`): memtables of 512 bytes,
    /// compaction outputs of 1 KiB, runs merged beyond two, so a round
    /// flushes, compacts and merges several times and old SSTs are merged
    /// away while readers hold them.
    pub busy_tree: bool,
    /// Bytes each written value is padded with (0; 64 with `--lifecycle`,
    /// so memtables fill and a round flushes and compacts many times).
    pub value_pad: usize,
    /// The shared store schedules run in (each under a prefix of its own,
    /// see `s3::schedule_store`); `None` gives each schedule a fresh
    /// `InMemory`. A real store needs `wall_clock`: on a paused clock its
    /// HTTP timeouts would fire at once.
    pub store: Option<Arc<dyn ObjectStore>>,
    /// WALs and fences in a store of their own (`Settings::wal_store`):
    /// the engine routes them under `db_api::WAL_STORE_ROOT`, which lies
    /// inside the prefix the chaos task holds, so every schedule runs as
    /// before with only the WALs' location changed.
    pub wal_store: bool,
    /// How SST blocks are compressed: none, LZ4 or zstd, a third of the
    /// seeds each, so every schedule's reads, compactions and recoveries
    /// also run over compressed blocks.
    pub compression: tidemark::Compression,
    /// `Settings::default_ttl` of every writer process: the puts that ask
    /// for the default (`Ttl::Default`, a third of the writers' puts to their
    /// own keys, and the liveness probes') expire this long after they are
    /// written. 5 to 504 ms on one seed in four, by mixed seed bits; `None`
    /// (puts live for ever unless they ask otherwise) on the rest.
    pub default_ttl: Option<Duration>,
}

/// Bits of the seed for the choices made independently of its residues.
fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The hedge settings of a hedging schedule: every WAL create and read may
/// be hedged once it waited 0.5 to 2 ms (held uploads wait several chaos
/// ticks of 0.5 ms, so hedges fire and race their first attempt).
fn hedge(bits: u64) -> HedgeSettings {
    let min = Duration::from_micros(500 + bits % 1500);
    HedgeSettings { budget: 1.0, min_delay: min, max_delay: min * 2 }
}

impl Config {
    pub fn new(seed: u64) -> Self {
        let bits = mix(seed);
        let burst_gap = if seed % 2 == 1 { Duration::ZERO } else { tidemark::Settings::default().burst_gap };
        // Independent of `burst_gap`'s parity: both combinations occur.
        let read_delay = if seed % 16 >= 14 { MAX_READ_DELAY } else { Duration::ZERO };
        let crash_ticks_per_op = if read_delay.is_zero() { 3 } else { LATE_CRASH_TICKS_PER_OP };
        let faults = (seed % 5 == 3).then_some(FAULTS);
        let zombies = faults.is_some() && seed % 2 == 0;
        Self {
            seed,
            writers: 6,
            ops: 12,
            rounds: 2,
            crash_op: None,
            zombies,
            protocol: Protocol::Shipped,
            mutant: None,
            wall_clock: false,
            burst_gap,
            read_delay,
            crash_ticks_per_op,
            compaction: seed % 5 == 2,
            compactor: match (bits >> 56) % 3 {
                0 => CompactorPlace::Writer,
                1 => CompactorPlace::Standalone,
                _ => CompactorPlace::Both,
            },
            gc_age: if bits >> 24 & 1 == 0 { GcAge::Zero } else { GcAge::Aged },
            gc_interval: Duration::from_millis(1 + (bits >> 32) % 8),
            faults,
            shared_keys: seed % 3 == 1,
            racing_openers: if seed % 10 == 7 { 2 + (seed / 10 % 15) as usize } else { 0 },
            readers: bits & 1 == 0,
            held_listings: (bits >> 8) % 3 == 0,
            hedge: ((bits >> 16) % 4 == 0).then(|| hedge(bits >> 40)),
            no_block_cache: bits >> 48 & 1 == 0,
            linger: Duration::from_millis(2),
            busy_tree: false,
            value_pad: 0,
            store: None,
            wal_store: false,
            compression: match (bits >> 52) % 3 {
                0 => tidemark::Compression::None,
                1 => tidemark::Compression::Lz4,
                _ => tidemark::Compression::Zstd { level: 1 },
            },
            default_ttl: (bits >> 60 & 3 == 0).then(|| Duration::from_millis(5 + (bits >> 12) % 500)),
        }
    }

    /// Turns faults on (`crash-check --faults`): every seed, zombies on even ones.
    pub fn with_faults(mut self) -> Self {
        if self.faults.is_none() {
            self.faults = Some(FAULTS);
            self.zombies |= self.seed % 2 == 0;
        }
        self
    }

    /// The lifecycle on every seed (`crash-check --lifecycle`): compaction
    /// and GC in every process, a reader in every process, zombies on a
    /// third of the seeds, held listings and hedges on half.
    pub fn with_lifecycle(mut self) -> Self {
        let bits = mix(self.seed);
        self.compaction = true;
        self.readers = true;
        self.zombies |= self.seed % 3 == 0;
        self.held_listings = bits >> 8 & 1 == 0;
        self.hedge = (bits >> 16 & 1 == 0).then(|| hedge(bits >> 40));
        self.no_block_cache = bits >> 48 & 3 != 0;
        self.linger = Duration::from_millis(20);
        self.busy_tree = true;
        self.value_pad = 64;
        self
    }

    /// Hedges on (`crash-check --hedges`): a short threshold drawn by seed.
    pub fn with_hedges(mut self) -> Self {
        self.hedge = Some(hedge(mix(self.seed) >> 40));
        self
    }

    /// The `gc_min_age` of this schedule's processes, and whether the clock
    /// jumps within them and rests between them.
    pub fn gc_min_age(&self) -> (Duration, bool) {
        match if self.wall_clock { GcAge::Wall } else { self.gc_age } {
            GcAge::Wall => (if self.zombies { Duration::from_secs(3600) } else { Duration::ZERO }, false),
            // Beside a zombie a zero minimum age is unsafe (spec, section 9).
            GcAge::Zero if self.zombies => (AGED_MIN_AGE, true),
            GcAge::Zero => (Duration::ZERO, false),
            GcAge::Aged => (AGED_MIN_AGE, true),
            GcAge::Fixed(d) => (d, false),
        }
    }

    /// Whether the schedule clock jumps and rests (aged GC on the paused clock).
    pub fn ages(&self) -> bool {
        self.compaction && !self.wall_clock && self.gc_min_age().1
    }
}
