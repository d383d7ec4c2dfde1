"""Counters of a running store, for logs and graphs."""

from __future__ import annotations

from dataclasses import dataclass

from ._writer import Writer


@dataclass(frozen=True)
class StoreStats:
    """A snapshot of :meth:`AsyncSessionStore.stats`. Counts run since the store opened."""

    #: Write ops waiting in the queue right now (the writer has not taken them yet).
    queued: int
    #: Batches committed (each one transaction).
    batches: int
    #: Ops those batches carried.
    ops: int
    mean_batch_size: float
    max_batch_size: int
    #: Percentiles of the time to run and commit one batch, over the most recent batches
    #: (:data:`power_store._writer.LATENCY_WINDOW`); 0.0 before the first batch.
    commit_p50_ms: float
    commit_p99_ms: float
    #: Reads that found every reader connection busy and had to wait for one.
    reader_waits: int
    #: Live watch() iterators.
    watchers: int


def _percentile(ordered: list[float], fraction: float) -> float:
    # Nearest rank: an actual observed latency, never an interpolation between two.
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def collect(writer: Writer, reader_waits: int, watchers: int) -> StoreStats:
    latencies = sorted(writer.latencies)
    return StoreStats(
        queued=writer.queued,
        batches=writer.batches,
        ops=writer.ops,
        mean_batch_size=writer.ops / writer.batches if writer.batches else 0.0,
        max_batch_size=writer.max_batch_seen,
        commit_p50_ms=_percentile(latencies, 0.50) * 1000,
        commit_p99_ms=_percentile(latencies, 0.99) * 1000,
        reader_waits=reader_waits,
        watchers=watchers,
    )
