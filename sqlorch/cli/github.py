"""GitHub Actions output: `::error` annotations for failures and a markdown run summary.

Active when the environment says `GITHUB_ACTIONS=true`; the summary is appended to the file
`$GITHUB_STEP_SUMMARY` names.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlorch.events import Event, EventKind, Listener

_AT = re.compile(r" at ([^\s:]+):(\d+)")


def escape_data(text: str) -> str:
    """Escape a workflow command's message (GitHub's rules for `::cmd::message`)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow command's property value (`file=...`, `title=...`)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(level: str, message: str, file: str | None, line: int | None, title: str) -> str:
    """Return one `::error file=...,line=...,title=...::message` workflow command."""
    props = []
    if file:
        props.append(f"file={escape_property(file)}")
        if line:
            props.append(f"line={line}")
    props.append(f"title={escape_property(title)}")
    return f"::{level} {','.join(props)}::{escape_data(message)}"


class GithubReporter:
    """Print annotations as failures happen; write the step summary when the run ends."""

    def __init__(self, write: Callable[[str], Any], summary_path: str | None) -> None:
        self._write = write
        self._summary = Path(summary_path) if summary_path else None
        self._assets: dict[str, dict[str, Any]] = {}
        self._failed_checks: list[tuple[str, str, str]] = []

    def __call__(self, event: Event) -> None:
        data = event.data
        key = event.asset
        if event.kind is EventKind.ASSET_MATERIALIZED and key:
            self._assets[key] = {
                "kind": data.get("kind", ""),
                "outcome": "success",
                "rows": data.get("rows"),
                "duration_s": data.get("duration_s"),
            }
        elif event.kind in (EventKind.ASSET_FAILED, EventKind.ASSET_SKIPPED) and key:
            failed = event.kind is EventKind.ASSET_FAILED
            self._assets[key] = {
                "kind": data.get("kind", ""),
                "outcome": "failed" if failed else "skipped",
                "rows": None,
                "duration_s": data.get("duration_s"),
                "note": event.message,
            }
            if failed:
                file = data.get("file")
                line = data.get("line")
                m = _AT.search(event.message)
                if m and file and m.group(1).endswith(file):
                    line = int(m.group(2))
                self._write(annotation("error", event.message, file, line, f"{key} failed"))
        elif event.kind in (EventKind.CHECK_FAILED, EventKind.CHECK_WARNED):
            level = "error" if event.kind is EventKind.CHECK_FAILED else "warning"
            name = str(data.get("check", ""))
            self._write(
                annotation(
                    level, event.message, data.get("file"), data.get("line"), f"check {name}"
                )
            )
            if level == "error":
                self._failed_checks.append((name, key or "", event.message))
        elif event.kind is EventKind.RUN_FINISHED and self._summary is not None:
            with self._summary.open("a", encoding="utf-8") as fh:
                fh.write(self.summary(event))

    def summary(self, finished: Event) -> str:
        """Return the run's markdown summary."""
        from sqlorch.cli.render import fmt_rows, fmt_seconds

        data = finished.data
        icon = {"success": "✅", "failed": "❌", "cancelled": "⏹️"}.get(data.get("status", ""), "")
        lines = [
            f"## sqlorch run `{finished.run_id}` {icon} {data.get('status', '')}",
            "",
            f"{data.get('succeeded', 0)} succeeded, {data.get('failed', 0)} failed, "
            f"{data.get('skipped', 0)} skipped; {data.get('checks_failed', 0)} checks failed.",
            "",
            "| asset | kind | outcome | rows | duration |",
            "| --- | --- | --- | ---: | ---: |",
        ]
        order = {"failed": 0, "skipped": 1, "success": 2}
        for key, a in sorted(self._assets.items(), key=lambda kv: (order[kv[1]["outcome"]], kv[0])):
            lines.append(
                f"| `{key}` | {a['kind']} | {a['outcome']} | {fmt_rows(a['rows'])} | "
                f"{fmt_seconds(a['duration_s'])} |"
            )
        if self._failed_checks:
            lines += [
                "",
                "### Failed checks",
                "",
                "| check | asset | message |",
                "| --- | --- | --- |",
            ]
            for name, key, message in self._failed_checks:
                text = " ".join(message.split()).replace("|", "\\|")
                lines.append(f"| `{name}` | `{key}` | {text} |")
        return "\n".join(lines) + "\n\n"


def ci_listeners() -> list[Listener]:
    """Return the GitHub Actions reporter when running in GitHub Actions (else nothing)."""
    if os.environ.get("GITHUB_ACTIONS") != "true":
        return []
    import click

    return [
        GithubReporter(
            lambda line: click.echo(line, err=False), os.environ.get("GITHUB_STEP_SUMMARY")
        )
    ]
