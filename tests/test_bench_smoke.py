"""The benchmark's short form runs in CI so it cannot rot; timings are never asserted."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "bench.py"
# Where the benchmark looks for the reference store (see benchmarks/_support.py).
REFERENCE = Path(
    os.environ.get(
        "POWER_STORE_REFERENCE",
        ROOT.parent / "shared" / "reference" / "power_loop_0_2_0_session_store.py",
    )
).expanduser()


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
    # Every ratio is measured. Only in a checkout without the reference store's file may the
    # ratios that need it be missing, and then they must say why.
    for r in report["ratios"]:
        if not REFERENCE.exists() and "reference not found" in r["note"]:
            continue
        assert isinstance(r["value"], float), r
    text = json.dumps(report["ratios"])
    for ratio in ("W1 / limit", "W1 FULL / W1 NORMAL", "single async", "agent rounds",
                  "under W1 / idle", "at 100k / at 1k", "peak RSS"):  # fmt: skip
        assert ratio in text, ratio


@pytest.mark.timeout(120)
def test_sink_benchmark_writes_what_each_workload_says() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "sink_bench.py"),
         "--messages", "640", "--one-by-one", "50"],
        capture_output=True, text=True, timeout=110, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # Each line counts the messages read back from its database, not the ones it meant to send.
    expected = {
        "sink (1 coroutine)": 640, "concurrent": 640, "append_messages of 10": 640,
        "awaited one by one": 50, "sync sink (1 thread)": 640,
    }  # fmt: skip
    for name, count in expected.items():
        found = re.search(rf"^{re.escape(name)}\s+(\d+) msgs", proc.stdout, re.MULTILINE)
        assert found is not None, (name, proc.stdout)
        assert int(found.group(1)) == count, (name, proc.stdout)
