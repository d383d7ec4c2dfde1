"""The README's first command: the demo runs and reports what it wrote."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from power_store import SessionStore


def test_demo_writes_a_fleet_and_reports_it(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    proc = subprocess.run(
        [sys.executable, "-m", "power_store", "demo", "--db", str(db), "--agents", "4",
         "--rounds", "4"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "sessions created" in proc.stdout
    assert str(db) in proc.stdout
    with SessionStore.open(db) as store:
        sample = proc.stdout.split("agent ")[1].split(":")[0]
        state = store.get_state(sample)
        assert state is not None
        assert state.round_index == 3
        assert state.last_compact_seq == 1
        assert store.load_active_messages(sample)[0].role == "user"
