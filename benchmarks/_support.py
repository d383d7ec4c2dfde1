"""Shared pieces of the benchmark: sizes, the result record, timing helpers, imports.

Kept apart from ``bench.py`` so that the memory probe (run in its own process) can use the
same sizes, content and import rules without importing the whole benchmark.
"""

from __future__ import annotations

import importlib.util
import math
import os
import sqlite3
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent

#: Every message body is 200 bytes, as the issue asks; ASCII so bytes == characters.
CONTENT = "x" * 200

#: Where the reference store lives when POWER_STORE_REFERENCE is not set. It is imported from
#: there at run time and never copied into the project (licence and provenance).
DEFAULT_REFERENCE = REPO_ROOT.parent / "shared" / "reference" / "power_loop_0_2_0_session_store.py"


@dataclass(frozen=True)
class Sizes:
    """How big each workload is. ``QUICK`` keeps the whole run to a few seconds for CI."""

    w1_sessions: int = 64
    w1_appends: int = 200
    single_appends: int = 5_000
    agents: int = 64
    rounds: int = 50
    tools: int = 3
    read_history: int = 200
    read_samples: int = 300
    growth_big: int = 100_000
    growth_small: int = 1_000
    growth_callers: int = 64
    growth_appends_per_caller: int = 50
    growth_repeats: int = 2
    load_active: int = 500
    load_samples: int = 40
    memory_appends: int = 1_000_000
    memory_callers: int = 64
    memory_checkpoint: int = 100_000
    #: Throughput workloads (both sides of every rate ratio) run this many times and keep
    #: their best run: a neighbour's burst on a shared machine then costs a rerun, not a
    #: verdict. Latency and memory workloads run once.
    best_of: int = 3


FULL = Sizes()
QUICK = Sizes(
    w1_sessions=16,
    w1_appends=20,
    single_appends=200,
    agents=8,
    rounds=3,
    tools=3,
    read_history=50,
    read_samples=30,
    growth_big=3_000,
    growth_small=100,
    growth_callers=8,
    growth_appends_per_caller=10,
    growth_repeats=1,
    load_active=50,
    load_samples=10,
    memory_appends=20_000,
    memory_callers=64,
    memory_checkpoint=2_000,
    best_of=1,
)


@dataclass
class Result:
    """One measured workload. ``rate`` is ops per second of wall time; latencies in ms."""

    key: str
    label: str
    ops: int
    seconds: float
    unit: str = "appends"
    p50_ms: float | None = None
    p99_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float | None:
        return self.ops / self.seconds if self.seconds > 0 and self.ops else None

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["rate_per_s"] = self.rate
        return d


def percentile(samples: list[float], p: float) -> float | None:
    """Nearest-rank percentile (no interpolation: p99 of 100 samples is the worst but one)."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_result(
    key: str,
    label: str,
    ops: int,
    seconds: float,
    latencies_s: list[float],
    unit: str = "appends",
    **extra: Any,
) -> Result:
    p50 = percentile(latencies_s, 50)
    p99 = percentile(latencies_s, 99)
    return Result(
        key=key,
        label=label,
        ops=ops,
        seconds=seconds,
        unit=unit,
        p50_ms=None if p50 is None else p50 * 1e3,
        p99_ms=None if p99 is None else p99 * 1e3,
        extra=dict(extra),
    )


def now() -> float:
    return time.perf_counter()


# ── imports ──────────────────────────────────────────────────────────────────────────────


def import_power_store() -> tuple[ModuleType | None, str]:
    """Import the checkout's power_store (repo root first on sys.path) or say why not.

    The benchmark must run against the working tree, not an older installed copy, so the
    repo root goes in front of sys.path.
    """
    root = str(REPO_ROOT)
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        import power_store
    except Exception as exc:  # any import-time failure means "not usable", not a crash
        return None, f"power_store not importable: {type(exc).__name__}: {exc}"
    missing = [n for n in ("AsyncSessionStore", "SessionStore") if not hasattr(power_store, n)]
    if missing:
        return None, f"power_store does not export {', '.join(missing)} yet"
    return power_store, "ok"


def reference_path() -> Path:
    env = os.environ.get("POWER_STORE_REFERENCE")
    return Path(env).expanduser() if env else DEFAULT_REFERENCE


def import_reference() -> tuple[ModuleType | None, str]:
    """Load the reference store module from its file, or return why it is unavailable."""
    path = reference_path()
    if not path.is_file():
        return None, f"reference not found ({path})"
    name = "_power_store_bench_reference"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        return None, f"reference not loadable ({path})"
    module = importlib.util.module_from_spec(spec)
    # dataclasses resolve annotations through sys.modules[cls.__module__]: register first.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        return None, f"reference failed to import: {type(exc).__name__}: {exc}"
    return module, str(path)


#: Used for the limit only when the reference file is absent. Written from the schema facts
#: (same columns, primary key and index as the reference's messages table) so the limit still
#: measures the same row shape.
FALLBACK_MESSAGES_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    session_id TEXT NOT NULL, seq INTEGER NOT NULL, role TEXT NOT NULL, name TEXT,
    content TEXT, tool_calls_json TEXT, tool_call_id TEXT, round_index INTEGER,
    state TEXT NOT NULL DEFAULT 'active', meta_json TEXT, created_at INTEGER NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE INDEX IF NOT EXISTS idx_messages_session_state ON messages(session_id, state, seq);
"""


def environment() -> dict[str, Any]:
    try:
        import aiosqlite

        aiosqlite_version = getattr(aiosqlite, "__version__", "?")
    except ImportError:
        aiosqlite_version = None
    return {
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "aiosqlite": aiosqlite_version,
        "cpus": os.cpu_count(),
        "platform": sys.platform,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def rss_kib() -> tuple[int, int]:
    """(VmRSS, VmHWM) of this process in KiB, read from /proc (Linux); (0, 0) elsewhere."""
    rss = hwm = 0
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except OSError:
        import resource

        # ru_maxrss is KiB on Linux, bytes on macOS; only the peak is available.
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        hwm = peak // 1024 if sys.platform == "darwin" else peak
    return rss, hwm
