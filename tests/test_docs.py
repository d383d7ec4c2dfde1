"""Every ```python block in README.md and docs/*.md runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import drop_schema, pg_dsn

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"```python\n(.*?)```", re.DOTALL)
DOC_SCHEMAS = re.compile(r"docs_[a-z_]+")


def _examples() -> list[tuple[str, str]]:
    found = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for i, block in enumerate(FENCE.findall(doc.read_text())):
            # Fragments that only show a call's shape are marked as such and skipped.
            if not block.startswith("# fragment"):
                found.append((f"{doc.name}#{i}", block))
    return found


@pytest.mark.parametrize(("name", "code"), _examples(), ids=[n for n, _ in _examples()])
def test_doc_example_runs(
    name: str, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    if not code.startswith("# needs PostgreSQL"):
        exec(compile(code, name, "exec"), {"__name__": "__main__"})
        return
    # Its schemas are named docs_*: dropped before (a failed earlier run) and after.
    dsn = pg_dsn()
    for schema in DOC_SCHEMAS.findall(code):
        drop_schema(dsn, schema)
    try:
        exec(compile(code, name, "exec"), {"__name__": "__main__"})
    finally:
        for schema in DOC_SCHEMAS.findall(code):
            drop_schema(dsn, schema)
