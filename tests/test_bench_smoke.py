"""The benchmark's short form runs in CI so it cannot rot; timings are never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


@pytest.mark.timeout(300)
def test_quick_benchmark_runs_every_workload(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json", str(out), "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=280, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["errors"] == []
    # Every ratio is measured, except those needing the reference store when its file is
    # absent (a checkout without ../shared): those must say so instead.
    for r in report["ratios"]:
        assert isinstance(r["value"], float) or "reference not found" in r["note"], r
    text = json.dumps(report["ratios"])
    for ratio in ("W1 / limit", "W1 FULL / W1 NORMAL", "single async", "agent rounds",
                  "under W1 / idle", "at 100k / at 1k", "peak RSS"):  # fmt: skip
        assert ratio in text, ratio
