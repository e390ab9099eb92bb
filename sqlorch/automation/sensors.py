"""Sensors at evaluation time: list a folder sensor's files, call an `@sensor` function.

Both turn into a `SensorOutcome` for the pure evaluation. A folder sensor's cursor is the JSON
of the files it handed over (relative path -> "size:mtime_ns"); a file counts once it has not
changed for `settle` seconds, and each file is its own run key (a file is handed over once).
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path

from sqlorch.api.automation import RunRequest, SensorContext, SensorResult
from sqlorch.automation.definitions import FolderSensor, FunctionSensor
from sqlorch.automation.evaluate import SensorOutcome, SensorRequest
from sqlorch.core.graph import AssetGraph
from sqlorch.errors import SqlorchError

#: relative path -> (size, mtime in seconds, mtime in nanoseconds)
Listing = Mapping[str, tuple[int, float, int]]


def list_folder(sensor: FolderSensor) -> Listing:
    """Return the files the sensor's glob matches now."""
    out: dict[str, tuple[int, float, int]] = {}
    for path in sorted(sensor.root.glob(sensor.pattern)):
        try:
            st = path.stat()
        except FileNotFoundError:
            continue  # removed while listing
        if path.is_file():
            out[path.relative_to(sensor.root).as_posix()] = (
                st.st_size,
                st.st_mtime,
                st.st_mtime_ns,
            )
    return out


def folder_outcome(
    sensor: FolderSensor, listing: Listing, cursor: str | None, now: datetime, graph: AssetGraph
) -> SensorOutcome:
    """Decide which files are new and settled (pure: the listing and the clock are given)."""
    handed: dict[str, str] = json.loads(cursor) if cursor else {}
    roots = sorted(k for k in sensor.keys if not set(graph.parents(k)) & sensor.keys)
    requests: list[SensorRequest] = []
    pending: list[float] = []
    kept = {f: sig for f, sig in handed.items() if f in listing}
    unmatched: list[str] = []
    for rel, (size, mtime, mtime_ns) in listing.items():
        sig = f"{size}:{mtime_ns}"
        if handed.get(rel) == sig:
            continue
        if now.timestamp() - mtime < sensor.settle_s:
            pending.append(mtime + sensor.settle_s)
            continue
        partition = None
        if sensor.partition is not None:
            match = sensor.partition.search(Path(rel).name)
            if match is None:
                unmatched.append(rel)
                continue
            partition = match.group("key")
        kept[rel] = sig
        absolute = str(sensor.root / rel)
        requests.append(
            SensorRequest(
                keys=sensor.keys,
                reason=f"new file {rel} ({size} bytes)"
                + (f" -> partition {partition}" if partition else ""),
                run_key=f"{rel}@{sig}",
                partition_key=partition,
                files={k: (absolute,) for k in roots},
            )
        )
    wake = [now + timedelta(seconds=sensor.interval_s)]
    wake += [datetime.fromtimestamp(t, now.tzinfo) for t in pending]
    skip = None
    if not requests:
        skip = f"no new files matching {sensor.pattern}"
        if pending:
            skip = f"{len(pending)} new file(s) still changing (settle {sensor.settle_s:g}s)"
        if unmatched:
            skip = f"file(s) {', '.join(unmatched)} do not match the partition pattern"
    return SensorOutcome(
        sensor.source,
        tuple(requests),
        json.dumps(kept, sort_keys=True),
        skip,
        next_wake=min(wake),
    )


def call_sensor(
    sensor: FunctionSensor,
    cursor: str | None,
    now: datetime,
    graph: AssetGraph,
    resolve: Callable[[tuple[str, ...]], frozenset[str]],
) -> SensorOutcome:
    """Call an `@sensor` function; an exception is a failed tick (the cursor stays)."""
    wake = now + timedelta(seconds=sensor.interval_s)
    definition = sensor.definition
    try:
        import inspect

        takes = "context" in inspect.signature(definition.fn).parameters
        value = (
            definition.fn(context=SensorContext(definition.name, cursor, now))
            if takes
            else definition.fn()
        )
        result = _result(value, sensor.where)
        requests = tuple(_request(r, sensor, graph, resolve) for r in result.run_requests)
    except Exception as exc:  # noqa: BLE001 - a user's sensor: recorded, retried next interval
        return SensorOutcome(sensor.source, error=_raised(sensor, exc), next_wake=wake)
    return SensorOutcome(
        sensor.source,
        requests,
        result.cursor if result.cursor is not None else cursor,
        result.skip_reason or ("no run requests" if not requests else None),
        next_wake=wake,
    )


def _result(value: object, where: str) -> SensorResult:
    if value is None:
        return SensorResult()
    if isinstance(value, SensorResult):
        return value
    if isinstance(value, RunRequest):
        return SensorResult((value,))
    if isinstance(value, list | tuple) and all(isinstance(v, RunRequest) for v in value):
        return SensorResult(tuple(value))
    raise SqlorchError(
        f"{where} returned {type(value).__name__}: return None, a RunRequest, a list of them, "
        "or a SensorResult(run_requests=..., cursor=...)."
    )


def _request(
    r: RunRequest,
    sensor: FunctionSensor,
    graph: AssetGraph,
    resolve: Callable[[tuple[str, ...]], frozenset[str]],
) -> SensorRequest:
    keys = resolve(r.select) if r.select else sensor.keys
    if not keys:
        raise SqlorchError(
            f"{sensor.where}: a RunRequest names no assets: give @sensor(select=...) or "
            "RunRequest(select=...)."
        )
    roots = sorted(k for k in keys if not set(graph.parents(k)) & keys)
    reason = f"@sensor {sensor.name}" + (f" run key {r.run_key!r}" if r.run_key else "")
    return SensorRequest(
        keys=keys,
        reason=reason,
        run_key=r.run_key,
        partition_key=r.partition_key,
        files={k: tuple(r.files) for k in roots} if r.files else {},
    )


def _raised(sensor: FunctionSensor, exc: Exception) -> str:
    where = sensor.where
    file = sensor.definition.file
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if file and frame.filename == file:
            where = f"@sensor {sensor.name} ({frame.filename}:{frame.lineno})"
            break
    message = exc.message if isinstance(exc, SqlorchError) else f"{type(exc).__name__}: {exc}"
    return f"{where} raised {message}. It is called again at its next interval."
