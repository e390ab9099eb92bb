"""Find `@asset` functions in the ingest modules named by the settings."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from sqlorch.assets import AssetDefinition
from sqlorch.errors import ProjectError


@dataclass(frozen=True, slots=True)
class FoundAsset:
    """An `@asset` definition and where it was found."""

    definition: AssetDefinition
    module: str
    file: str
    line: int | None
    code_version: str


def discover(root: Path, ingest: tuple[str, ...]) -> list[FoundAsset]:
    """Import the ingest modules and return their `@asset` definitions, in a stable order.

    Each entry of `ingest` is a folder relative to `root` (every .py file under it is
    imported, as a package path from `root`) or a dotted module name. A missing default
    `ingest` folder is not an error: a plain dbt project has none.

    Raises:
        ProjectError: a module fails to import.
    """
    modules: list[str] = []
    for entry in ingest:
        folder = root / entry
        if folder.is_dir():
            for path in sorted(folder.rglob("*.py")):
                rel = path.relative_to(root).with_suffix("")
                parts = rel.parts
                if any(p.startswith(".") or p == "__pycache__" for p in parts):
                    continue
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                modules.append(".".join(parts))
        elif (root / f"{entry}.py").is_file():
            modules.append(entry.replace("/", "."))
        elif "/" not in entry and not folder.exists() and entry != "ingest":
            modules.append(entry)
    if not modules:
        return []
    root_str = str(root)
    if root_str not in sys.path:
        sys.path.insert(0, root_str)
    found: list[FoundAsset] = []
    seen: set[int] = set()
    for name in dict.fromkeys(modules):
        mod = _import(name, root)
        for value in vars(mod).values():
            if isinstance(value, AssetDefinition) and id(value) not in seen:
                if getattr(value.fn, "__module__", name) != name:
                    continue  # imported from another module: found there
                seen.add(id(value))
                found.append(_found(value, name, root))
    return found


def _import(name: str, root: Path) -> object:
    # a module of the same name from another project (or an older copy) must not be reused
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        prefix = ".".join(parts[:i])
        cached = sys.modules.get(prefix)
        if cached is None:
            continue
        where = getattr(cached, "__file__", None) or next(
            iter(getattr(cached, "__path__", []) or []), None
        )
        if where is None or not _inside(str(where), root):
            for mod_name in [m for m in sys.modules if m == prefix or m.startswith(prefix + ".")]:
                del sys.modules[mod_name]
    importlib.invalidate_caches()
    try:
        return importlib.import_module(name)
    except SyntaxError as exc:
        file = _rel(Path(exc.filename or name), root)
        raise ProjectError(
            f"Ingest module {name} has a syntax error at {file}:{exc.lineno}: {exc.msg}. "
            "Fix it and run again.",
            file=file,
            line=exc.lineno,
        ) from exc
    except Exception as exc:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if _inside(f.filename, root)]
        where = ""
        where_file: str | None = None
        where_line: int | None = None
        if frames:
            where_file = _rel(Path(frames[-1].filename), root)
            where_line = frames[-1].lineno
            where = f" at {where_file}:{where_line}"
        raise ProjectError(
            f"Importing ingest module {name} failed{where}: {type(exc).__name__}: {exc}. "
            "Fix the module (or the `ingest` setting under [tool.sqlorch]) and run again.",
            file=where_file,
            line=where_line,
        ) from exc


def _found(defn: AssetDefinition, module: str, root: Path) -> FoundAsset:
    fn = inspect.unwrap(defn.fn)
    line: int | None
    try:
        source = inspect.getsource(fn)
        line = inspect.getsourcelines(fn)[1]
    except (OSError, TypeError):
        source, line = repr(fn), None
    file = inspect.getsourcefile(fn) or module
    version = defn.code_version or hashlib.sha256(source.encode()).hexdigest()[:16]
    return FoundAsset(defn, module, _rel(Path(file), root), line, version)


def _inside(filename: str, root: Path) -> bool:
    try:
        Path(filename).resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)
