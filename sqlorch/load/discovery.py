"""Find `@asset` functions in the ingest modules named by the settings."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import traceback
import types
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from sqlorch.api.asset import AssetDefinition
from sqlorch.api.checks import CheckDefinition
from sqlorch.api.dlt import DltAssets, dlt_assets_of
from sqlorch.core.codeversion import python_source_version
from sqlorch.errors import ConfigError, ProjectError


@dataclass(frozen=True, slots=True)
class FoundAsset:
    """An `@asset` definition and where it was found."""

    definition: AssetDefinition
    module: str
    file: str
    line: int | None
    code_version: str


@dataclass(frozen=True, slots=True)
class FoundCheck:
    """A `@check` definition and where it was found."""

    definition: CheckDefinition
    module: str
    file: str
    line: int | None


def discover_all(
    root: Path,
    ingest: tuple[str, ...],
    dlt_dir: Path | None = None,
    dlt_settings: Mapping[str, str] | None = None,
    settings_file: str = "[tool.sqlorch]",
) -> tuple[list[FoundAsset], list[FoundCheck]]:
    """Import the ingest modules and return their `@asset` and `@check` definitions.

    A `dlt_assets` declaration becomes one asset per table it loads (`dlt_dir` holds the
    dlt pipelines' state, whose stored schemas name tables earlier loads created); so does
    each line of the `dlt` setting (`dataset = "module:function"`).

    Each entry of `ingest` is a folder relative to `root` (every .py file under it is
    imported, as a package path from `root`) or a dotted module name. A missing default
    `ingest` folder is not an error: a plain dbt project has none.

    Raises:
        ProjectError: a module fails to import.
    """
    modules, packages, files = _ingest_modules(root, ingest)
    dlt_lines = dict(dlt_settings or {})
    modules.extend(_setting_module(d, t, settings_file) for d, t in dlt_lines.items())
    if not modules:
        return [], []
    root_str = str(root)
    if root_str not in sys.path:
        sys.path.insert(0, root_str)
    # Bind this project's package names to its folders before importing anything, so a
    # same-named package elsewhere on sys.path (or another project's, loaded earlier in this
    # process) can never shadow them: regular packages win over namespace folders otherwise.
    for name in sorted(packages, key=lambda n: n.count(".")):
        _forget(name)
    for name in sorted(packages, key=lambda n: n.count(".")):
        _bind_package(name, packages[name], root)
    found: list[FoundAsset] = []
    checks: list[FoundCheck] = []
    seen: set[int] = set()
    for name in dict.fromkeys(modules):
        mod = _import(name, root, files.get(name))
        for value in list(vars(mod).values()):  # a dlt source can add module globals
            if isinstance(value, DltAssets) and id(value) not in seen:
                seen.add(id(value))
                found.extend(_found_dlt(value, name, root, dlt_dir or root / ".sqlorch" / "dlt"))
                continue
            if isinstance(value, AssetDefinition | CheckDefinition) and id(value) not in seen:
                if getattr(value.fn, "__module__", name) != name:
                    continue  # imported from another module: found there
                seen.add(id(value))
                if isinstance(value, AssetDefinition):
                    found.append(_found(value, name, root))
                else:
                    checks.append(_found_check(value, name, root))
    for dataset, target in dlt_lines.items():
        module, _, attr = target.partition(":")
        mod = sys.modules.get(module) or _import(module, root)
        if not hasattr(mod, attr):
            raise ConfigError(
                f"{settings_file}: the dlt setting {dataset} = {target!r} names {attr!r}, "
                f"which module {module} does not define. Name a dlt source, resource, or a "
                "function returning one.",
            )
        file = str(getattr(mod, "__file__", None) or module)
        decl = dlt_assets_of(dataset, getattr(mod, attr), attr, file)
        found.extend(_found_dlt(decl, module, root, dlt_dir or root / ".sqlorch" / "dlt"))
    return found, checks


def _ingest_modules(
    root: Path, ingest: tuple[str, ...]
) -> tuple[list[str], dict[str, Path], dict[str, Path]]:
    """Return the modules `ingest` names, the packages holding them, and the files of others."""
    modules: list[str] = []
    packages: dict[str, Path] = {}
    files: dict[str, Path] = {}
    for entry in ingest:
        folder = root / entry
        if folder.is_dir():
            rel_parts = folder.resolve().relative_to(root.resolve()).parts
            for i in range(1, len(rel_parts) + 1):
                packages[".".join(rel_parts[:i])] = root.joinpath(*rel_parts[:i])
            for path in sorted(folder.rglob("*.py")):
                parts = path.relative_to(root).with_suffix("").parts
                if any(p.startswith(".") or p == "__pycache__" for p in parts):
                    continue
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                    for i in range(1, len(parts) + 1):
                        packages[".".join(parts[:i])] = root.joinpath(*parts[:i])
                modules.append(".".join(parts))
        elif (root / f"{entry}.py").is_file():
            name = entry.replace("/", ".")
            files[name] = root / f"{entry}.py"
            modules.append(name)
        elif "/" not in entry and not folder.exists() and entry != "ingest":
            modules.append(entry)
    return modules, packages, files


def _setting_module(dataset: str, target: str, settings_file: str) -> str:
    """The module of one line of the `dlt` setting (`dataset = "module:function"`)."""
    module, _, attr = target.partition(":")
    if not module or not attr:
        raise ConfigError(
            f"{settings_file}: the dlt setting {dataset} = {target!r} must be "
            '"module:function" (a dlt source, resource, or a function returning one).',
        )
    return module


def _forget(name: str) -> None:
    for mod_name in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[mod_name]


def _bind_package(name: str, folder: Path, root: Path) -> None:
    """Register `name` as the package of `folder` (its __init__.py runs, if it has one)."""
    init = folder / "__init__.py"
    if init.is_file():
        spec = importlib.util.spec_from_file_location(
            name, init, submodule_search_locations=[str(folder)]
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException as exc:
            del sys.modules[name]
            raise _import_error(name, root, exc) from exc
    else:
        module = types.ModuleType(name)
        module.__path__ = [str(folder)]
        sys.modules[name] = module
    if "." in name:
        parent, _, child = name.rpartition(".")
        setattr(sys.modules[parent], child, module)


def _import(name: str, root: Path, file: Path | None = None) -> object:
    if name in sys.modules and file is None and _inside(_module_file(name), root):
        return sys.modules[name]  # a package bound above (its __init__ already ran)
    _forget(name)
    importlib.invalidate_caches()
    try:
        if file is not None:
            spec = importlib.util.spec_from_file_location(name, file)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            return module
        return importlib.import_module(name)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise _import_error(name, root, exc) from exc


def _module_file(name: str) -> str:
    module = sys.modules[name]
    where = getattr(module, "__file__", None) or next(
        iter(getattr(module, "__path__", []) or []), ""
    )
    return str(where)


def _import_error(name: str, root: Path, exc: BaseException) -> ProjectError:
    if isinstance(exc, SyntaxError):
        file = _rel(Path(exc.filename or name), root)
        return ProjectError(
            f"Ingest module {name} has a syntax error at {file}:{exc.lineno}: {exc.msg}. "
            "Fix it and run again.",
            file=file,
            line=exc.lineno,
        )
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _inside(f.filename, root)]
    where = ""
    where_file: str | None = None
    where_line: int | None = None
    if frames:
        where_file = _rel(Path(frames[-1].filename), root)
        where_line = frames[-1].lineno
        where = f" at {where_file}:{where_line}"
    return ProjectError(
        f"Importing ingest module {name} failed{where}: {type(exc).__name__}: {exc}. "
        "Fix the module (or the `ingest` setting under [tool.sqlorch]) and run again.",
        file=where_file,
        line=where_line,
    )


def _found(defn: AssetDefinition, module: str, root: Path) -> FoundAsset:
    fn = inspect.unwrap(defn.fn)
    line: int | None
    try:
        source = inspect.getsource(fn)
        line = inspect.getsourcelines(fn)[1]
    except (OSError, TypeError):
        source, line = repr(fn), None
    file = inspect.getsourcefile(fn) or module
    version = defn.code_version or python_source_version(source)
    return FoundAsset(defn, module, _rel(Path(file), root), line, version)


def _found_dlt(decl: DltAssets, module: str, root: Path, dlt_dir: Path) -> list[FoundAsset]:
    """Expand a `dlt_assets` declaration into one found asset per table."""
    from sqlorch.errors import SqlorchError

    decl = replace(
        decl, name=decl.name or module.rsplit(".", 1)[-1], file=_rel(Path(decl.file), root)
    )
    try:
        definitions = decl.definitions(dlt_dir, _dlt_tables(decl, dlt_dir))
    except SqlorchError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of the user's source, reported
        where = decl.where()
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if _inside(f.filename, root)]
        at = f" at {_rel(Path(frames[-1].filename), root)}:{frames[-1].lineno}" if frames else ""
        raise ProjectError(
            f"dlt assets {decl.name!r} ({where}): listing the source's tables failed{at}: "
            f"{type(exc).__name__}: {exc}. Fix the source and run again.",
            file=decl.file,
            line=decl.line,
        ) from exc
    return [FoundAsset(d, module, decl.file, decl.line, d.code_version or "") for d in definitions]


def _dlt_tables(decl: DltAssets, dlt_dir: Path) -> list[str]:
    """The tables of a dlt source, from a cache while its code and stored schemas are unchanged.

    Listing them makes the source (which imports dlt, about 0.4 s); a declaration whose
    function imports dlt inside costs a no-op command nothing once cached.
    """
    import json

    name = decl.resolved_pipeline_name()
    schemas = dlt_dir / name / "schemas"
    found = sorted(schemas.glob("*.schema.json")) if schemas.is_dir() else []
    stamp = [decl.version(), *(f"{p.name}:{p.stat().st_mtime_ns}" for p in found)]
    cache = dlt_dir / f"{name}.tables.json"
    try:
        data = json.loads(cache.read_text())
        if data.get("stamp") == stamp and isinstance(data.get("tables"), list):
            return [str(t) for t in data["tables"]]
    except (OSError, ValueError):
        pass
    tables = decl.tables(dlt_dir)
    try:
        dlt_dir.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"stamp": stamp, "tables": tables}))
    except OSError:
        pass  # a read-only project: list them again next time
    return tables


def _found_check(defn: CheckDefinition, module: str, root: Path) -> FoundCheck:
    fn = inspect.unwrap(defn.fn)
    try:
        line: int | None = inspect.getsourcelines(fn)[1]
    except (OSError, TypeError):
        line = None
    file = inspect.getsourcefile(fn) or module
    return FoundCheck(defn, module, _rel(Path(file), root), line)


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
