"""GitHub Actions workflow commands: escaping and the run summary (pure)."""

from __future__ import annotations

from pathlib import Path

from sqlorch.cli.github import GithubReporter, annotation
from sqlorch.events import Event, EventKind


def test_annotation_escapes_messages_and_properties() -> None:
    line = annotation("error", "50% failed\nsee log", "models/a,b.sql", 3, "check x: y")
    assert line == "::error file=models/a%2Cb.sql,line=3,title=check x%3A y::50%25 failed%0Asee log"
    assert annotation("warning", "m", None, 7, "t") == "::warning title=t::m"


def test_reporter_annotates_failures_with_the_raising_line(tmp_path: Path) -> None:
    out: list[str] = []
    summary = tmp_path / "summary.md"
    reporter = GithubReporter(out.append, str(summary))

    def ev(what: EventKind, asset: str | None, message: str = "", **data: object) -> Event:
        return Event(what, "r1", "2026-01-01T00:00:00Z", asset, message, "info", dict(data))

    reporter(ev(EventKind.ASSET_MATERIALIZED, "raw.ok", kind="python", rows=3, duration_s=0.5))
    reporter(
        ev(
            EventKind.ASSET_FAILED,
            "raw.bad",
            "Python asset 'raw.bad' raised ValueError at ingest/x.py:42: no",
            kind="python",
            file="ingest/x.py",
            line=10,
        )
    )
    reporter(ev(EventKind.ASSET_SKIPPED, "raw.after", "upstream raw.bad failed", kind="python"))
    reporter(ev(EventKind.CHECK_WARNED, "raw.ok", "c: meh", check="c", file="ingest/q.py", line=5))
    reporter(ev(EventKind.RUN_FINISHED, None, status="failed", succeeded=1, failed=1, skipped=1))
    assert out == [
        "::error file=ingest/x.py,line=42,title=raw.bad failed::Python asset 'raw.bad' raised "
        "ValueError at ingest/x.py:42: no",
        "::warning file=ingest/q.py,line=5,title=check c::c: meh",
    ]
    text = summary.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert rows == [
        "| `raw.bad` | python | failed |  |  |",
        "| `raw.after` | python | skipped |  |  |",
        "| `raw.ok` | python | success | 3 rows | 0.50s |",
    ]
    assert "❌ failed" in text and "Failed checks" not in text
