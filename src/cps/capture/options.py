"""What a protector can be told: its schedules, its sizes and its limits, with their defaults."""

from __future__ import annotations

from dataclasses import dataclass

from ..repository.storage import SPOOL_BYTES


@dataclass(frozen=True, slots=True)
class ProtectOptions:
    full_every: float = 24 * 3600.0
    # Also take a full backup once the pages changed since the last one (each counted once,
    # changed_pages.py) pass this share of the database's size, and at least
    # full_after_changes_min bytes, so a restore never has more than that to replay after its full
    # backup; and not more often than every full_after_changes_interval seconds.
    full_after_changes_share: float = 0.5
    full_after_changes_min: int = 256 << 20
    full_after_changes_interval: float = 600.0
    # Hand a segment over as soon as it holds this many page bytes, whatever the sync interval.
    # Segments are compressed as they are built, so memory holds compressed bytes: the
    # compressor's 16 MiB window, the segment being built, and those not yet written, which
    # capture keeps under WAITING_SHARE of this (it waits for the disk beyond that).
    segment_max_bytes: int = 24 << 20
    recovery_point_every: float | None = 15 * 60.0
    sync_interval: float = 1.0
    # Read the WAL every poll_interval while the database is idle, so that a commit after a quiet
    # spell is seen at once, and every batch_interval while commits keep coming, but never later
    # than a sync falls due (protector.py, Protector._pause).
    poll_interval: float = 0.01
    batch_interval: float = 0.1
    # Force a WAL reset once this many frames are in it (48 MiB at 4 KiB). Each reset holds the
    # application's writers for 5 to 15 ms (a segment and a checkpoint made durable), whatever the
    # size: under a stream of deliveries, resets every 24 MiB held them 3 % of the time.
    reset_frames: int = 12288
    checkpoint_frames: int = 1  # run a PASSIVE checkpoint after capturing this many frames
    # While the repository cannot be written, hold the WAL up to this size, then let it go
    # (outage.py): the database's disk matters more than the chain's continuity.
    wal_limit: int = 1 << 30
    # A repository in a bucket is written through a local spool of at most this many bytes
    # (repository/storage/spool.py); when it is full, capture rides it out as an outage.
    spool_limit: int = SPOOL_BYTES
    # Accept a database file at another path than the one this id was protected from.
    new_source: bool = False
    # Report a "durable" event (the last durable transaction, and the time before which every
    # commit is durable) whenever that time moves, at most every DURABLE_EVERY seconds: the
    # server answers deliveries only once they are durable with it.
    report_durable: bool = False
