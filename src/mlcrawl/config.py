"""Configuration: a TOML file read with tomllib into frozen Config/Job dataclasses.

Unknown keys are errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .fileaccess import DEFAULT_READ_LIMIT

DEFAULT_CATALOG = "mlcrawl.duckdb"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}


@dataclass(frozen=True)
class Job:
    """One crawl job: which roots to crawl and how."""

    name: str = "default"
    roots: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    enabled: tuple[str, ...] = ()
    disabled: tuple[str, ...] = ()
    max_hash_size: int | None = None
    follow_symlinks: bool = False
    threads: int = 2
    delete_guard: float = 0.5
    md5: str = "dvc"
    unit_time_limit: float = 300.0
    unit_memory_limit: int | None = 2 << 30
    read_limit: int = DEFAULT_READ_LIMIT

    def __post_init__(self) -> None:
        if not 0.0 <= self.delete_guard <= 1.0:
            raise ConfigError(f"job {self.name!r}: delete_guard must be between 0 and 1, got {self.delete_guard}")
        if self.threads < 1:
            raise ConfigError(f"job {self.name!r}: threads must be at least 1, got {self.threads}")
        if self.md5 not in ("dvc", "always", "never"):
            raise ConfigError(f"job {self.name!r}: md5 must be 'dvc', 'always' or 'never', got {self.md5!r}")
        if self.unit_time_limit < 0:
            raise ConfigError(f"job {self.name!r}: unit_time_limit must not be negative (0 = no limit)")


@dataclass(frozen=True)
class WatchSettings:
    """Settings of ``mlcrawl watch``."""

    settle: float = 2.0
    poll_interval: float = 30.0
    batch_seconds: float = 5.0


@dataclass(frozen=True)
class Config:
    """The whole configuration file."""

    catalog: str | None = None
    data_path: str | None = None  # a DuckLake's Parquet folder
    openlineage_url: str | None = None  # send run events here after each crawl and watch batch
    jobs: tuple[Job, ...] = ()
    crawlers: dict[str, dict[str, Any]] = field(default_factory=dict)
    watch: WatchSettings = WatchSettings()
    source: Path | None = None

    def job(self, name: str) -> Job:
        """The job called ``name``; a clear error lists the known ones."""
        for job in self.jobs:
            if job.name == name:
                return job
        known = ", ".join(j.name for j in self.jobs) or "none"
        where = f" in {self.source}" if self.source else ""
        raise ConfigError(f"no job named {name!r}{where} (jobs: {known})")


def parse_size(value: Any, key: str = "max_hash_size") -> int | None:
    """Bytes from an int or a string such as ``'2 GB'``, ``'500MiB'``; None/'' means no limit."""
    if value is None or value == "" or value == 0:
        return None
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a size, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"{key}: must not be negative")
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ConfigError(f"{key}: cannot read {value!r} as a size (e.g. 2GB, 500MiB, 1048576)")
    number, unit = float(match[1]), (match[2] or "").lower()
    binary = "i" in unit
    prefix = unit[:1] if unit[:1] != "b" else ""
    base = 1024 ** "kmgtp".index(prefix) * 1024 if binary and prefix else _UNITS[prefix]
    return int(number * base)


def _check_keys(where: str, data: dict, allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(allowed))}")


def _str_tuple(where: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: expected a list of strings")
    return tuple(value)


_JOB_KEYS = {f.name for f in fields(Job)} - {"enabled", "disabled"} | {"crawlers"}


def _parse_job(data: dict, index: int, base: Path) -> Job:
    where = f"jobs[{index}]"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table")
    _check_keys(where, data, _JOB_KEYS)
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: every job needs a name")
    crawlers = data.get("crawlers", {})
    if not isinstance(crawlers, dict):
        raise ConfigError(f"job {name!r}: crawlers must be a table with enabled/disabled lists")
    _check_keys(f"job {name!r} crawlers", crawlers, {"enabled", "disabled"})
    roots = tuple(str((base / r).expanduser()) if not Path(r).expanduser().is_absolute() else str(Path(r).expanduser())
                  for r in _str_tuple(f"job {name!r} roots", data.get("roots", [])))
    try:
        return Job(
            name=name,
            roots=roots,
            include=_str_tuple(f"job {name!r} include", data.get("include", [])),
            exclude=_str_tuple(f"job {name!r} exclude", data.get("exclude", [])),
            enabled=_str_tuple(f"job {name!r} crawlers.enabled", crawlers.get("enabled", [])),
            disabled=_str_tuple(f"job {name!r} crawlers.disabled", crawlers.get("disabled", [])),
            max_hash_size=parse_size(data.get("max_hash_size"), f"job {name!r} max_hash_size"),
            follow_symlinks=bool(data.get("follow_symlinks", False)),
            threads=int(data.get("threads", 2)),
            delete_guard=float(data.get("delete_guard", 0.5)),
            md5=str(data.get("md5", "dvc")),
            unit_time_limit=float(data.get("unit_time_limit", 300.0)),
            unit_memory_limit=parse_size(data.get("unit_memory_limit", "2GiB"), f"job {name!r} unit_memory_limit"),
            read_limit=parse_size(data.get("read_limit", "256MiB"), f"job {name!r} read_limit") or 2**63 - 1,
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"job {name!r}: {exc}") from exc


def parse_config(data: dict, source: Path | None = None) -> Config:
    """Build a Config from parsed TOML; relative roots and catalog are taken from the file's folder."""
    base = source.parent if source else Path.cwd()
    _check_keys("config", data, {"catalog", "data_path", "openlineage_url", "jobs", "crawlers", "watch"})
    catalog = data.get("catalog")
    if catalog is not None and not isinstance(catalog, str):
        raise ConfigError("config: catalog must be a path string")
    if catalog is not None and catalog.startswith("ducklake:") and not catalog.startswith("ducklake:postgres:"):
        local = catalog[len("ducklake:"):]
        catalog = "ducklake:" + (local if Path(local).expanduser().is_absolute() else str(base / local))
    elif catalog is not None and not catalog.startswith("ducklake:") and not Path(catalog).expanduser().is_absolute():
        catalog = str(base / catalog)
    data_path = data.get("data_path")
    if data_path is not None and not isinstance(data_path, str):
        raise ConfigError("config: data_path must be a path string")
    if data_path is not None and not Path(data_path).expanduser().is_absolute():
        data_path = str(base / data_path)
    openlineage_url = data.get("openlineage_url")
    if openlineage_url is not None and not (isinstance(openlineage_url, str) and openlineage_url.startswith(("http://", "https://"))):
        raise ConfigError("config: openlineage_url must be an http(s):// URL string")
    jobs = tuple(_parse_job(j, i, base) for i, j in enumerate(data.get("jobs", [])))
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        raise ConfigError("config: job names must be unique")
    crawlers = data.get("crawlers", {})
    if not isinstance(crawlers, dict) or not all(isinstance(v, dict) for v in crawlers.values()):
        raise ConfigError("config: [crawlers.<name>] sections must be tables of options")
    watch = data.get("watch", {})
    _check_keys("watch", watch, {f.name for f in fields(WatchSettings)})
    try:
        watch_settings = WatchSettings(**{k: float(v) for k, v in watch.items()})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"watch: {exc}") from exc
    return Config(catalog=catalog, data_path=data_path, openlineage_url=openlineage_url, jobs=jobs, crawlers=crawlers, watch=watch_settings, source=source)


def load_config(path: Path | str) -> Config:
    """Read and validate a TOML config file."""
    path = Path(path).expanduser()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, source=path.absolute())


def with_overrides(job: Job, **overrides: Any) -> Job:
    """``job`` with the given fields replaced; None values mean "not given on the command line"."""
    given = {k: v for k, v in overrides.items() if v is not None and v != ()}
    return replace(job, **given)
