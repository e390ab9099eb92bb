"""What `sqlorch schedules|sensors|automation ls / preview / ticks / pause / resume` show and do.

Documents are plain JSON-ready mappings (the `--json` output; the terminal renders the same).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlorch.automation.definitions import AutomationSpec, SourceKind
from sqlorch.automation.evaluate import iso
from sqlorch.automation.ticks import Loaded, evaluate_now, load_automation
from sqlorch.errors import ConfigError
from sqlorch.settings import Settings
from sqlorch.state.automation import TickRecord, open_automation


def source_documents(
    settings: Settings, kind: SourceKind, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Return every declared source of `kind` with its next tick, pause and last decision."""
    loaded = load_automation(settings)
    at = now or datetime.now(UTC)
    astore = open_automation(settings)
    paused, last = astore.paused(), astore.last_ticks()
    spec = loaded.spec
    docs: list[dict[str, Any]] = []
    if kind is SourceKind.SCHEDULE:
        for s in spec.schedules:
            docs.append(
                {
                    "name": s.name,
                    "source": s.source,
                    "cron": s.cron.expression,
                    "timezone": s.cron.timezone,
                    "select": list(s.select),
                    "assets": sorted(s.keys),
                    "catch_up": str(s.catch_up),
                    "next_tick": iso(s.cron.next_after(at)),
                }
            )
    elif kind is SourceKind.SENSOR:
        for f in spec.folder_sensors:
            docs.append(
                {
                    "name": f.name,
                    "source": f.source,
                    "type": "folder",
                    "path": f.pattern,
                    "select": list(f.select),
                    "assets": sorted(f.keys),
                    "interval_s": f.interval_s,
                }
            )
        for fn in spec.function_sensors:
            docs.append(
                {
                    "name": fn.name,
                    "source": fn.source,
                    "type": "function",
                    "file": f"{fn.definition.file}:{fn.definition.line}",
                    "select": list(fn.definition.select),
                    "assets": sorted(fn.keys),
                    "interval_s": fn.interval_s,
                }
            )
    else:
        for key in loaded.project.graph.topological(spec.assets):
            a = spec.assets[key]
            doc: dict[str, Any] = {"key": key, "source": a.source, "conditions": a.describe()}
            if a.on_cron is not None:
                doc["next_tick"] = iso(a.on_cron.next_after(at))
            docs.append(doc)
    for doc in docs:
        doc["paused"] = doc["source"] in paused
        tick = last.get(doc["source"])
        doc["last_tick"] = tick_document(tick) if tick else None
    return docs


def tick_document(t: TickRecord) -> dict[str, Any]:
    """Return one tick record as `ticks --json` prints it."""
    return {
        "at": t.at,
        "source": t.source,
        "status": t.status,
        "assets": list(t.assets),
        "reasons": list(t.reasons),
        "run_key": t.run_key,
        "request_id": t.request_id,
        "error": t.error,
    }


def tick_documents(
    settings: Settings, kind: SourceKind, name: str | None, limit: int
) -> list[dict[str, Any]]:
    """Return the newest tick records of one kind of source (or of one source)."""
    astore = open_automation(settings)
    prefix = f"{kind}:"
    source = None if name is None else _source(kind, name)
    ticks = [t for t in astore.ticks(source) if t.source.startswith(prefix)][:limit]
    out = []
    for t in ticks:
        doc = tick_document(t)
        request = astore.request(t.request_id) if t.request_id else None
        doc["run_id"] = request.run_id if request else None
        doc["run_status"] = str(request.status) if request else None
        out.append(doc)
    return out


def preview(settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    """Evaluate everything now WITHOUT recording or launching: what would be requested, why."""
    loaded = load_automation(settings)
    at = now or datetime.now(UTC)
    astore = open_automation(settings)
    evaluation, _facts = evaluate_now(loaded, astore.store, astore, at)
    return {
        "at": iso(at),
        "decisions": [
            {
                "source": d.source,
                "status": str(d.status),
                "assets": list(d.assets),
                "reasons": list(d.reasons),
                "run_key": d.run_key,
                "error": d.error,
            }
            for d in evaluation.decisions
        ],
        "run": evaluation.spec.to_json() if evaluation.spec else None,
        "next_wake": iso(evaluation.next_wake) if evaluation.next_wake else None,
    }


def set_paused(settings: Settings, kind: SourceKind, name: str, paused: bool) -> str:
    """Pause or resume one source; return its id.

    Resuming a schedule or an `on_cron` asset moves its cursor to now, so ticks missed while
    paused do not flood in.

    Raises:
        ConfigError: no such source is declared.
    """
    loaded = load_automation(settings)
    source = _source(kind, name)
    if source not in loaded.spec.sources:
        known = ", ".join(
            s.split(":", 1)[1] for s in loaded.spec.sources if s.startswith(f"{kind}:")
        )
        raise ConfigError(f"No {kind} named {name!r} is declared. Declared: {known or 'none'}.")
    astore = open_automation(settings)
    now = iso(datetime.now(UTC))
    astore.set_paused(source, paused, now)
    if not paused:
        cursors = _restart_cursors(loaded.spec, source, now)
        if cursors:
            astore.commit_tick([], None, [], cursors, now)
    return source


def _restart_cursors(spec: AutomationSpec, source: str, now: str) -> dict[str, str | None]:
    if source.startswith("schedule:"):
        return {source: now}
    asset = spec.assets.get(source.split(":", 1)[1])
    if asset is not None and asset.on_cron is not None:
        return {f"{source}:on_cron": None}
    return {}


def _source(kind: SourceKind, name: str) -> str:
    return name if name.startswith(f"{kind}:") else f"{kind}:{name}"


__all__ = ["Loaded", "preview", "set_paused", "source_documents", "tick_documents"]
