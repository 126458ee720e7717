"""Hydra output folders: single runs, multirun sweeps and their jobs, with the jobs' outputs.

Layout (``hydra.run.dir`` / ``hydra.sweep.dir`` are user-chosen; these are the defaults)::

    outputs/<date>/<time>/            a single run: run_id hydra:<rel dir>
      .hydra/config.yaml              the resolved job config -> params
      .hydra/overrides.yaml           command-line overrides -> tags override.<i>
      .hydra/hydra.yaml               mode, job name/num/id/chdir, choices, runtime cwd/output_dir,
                                      and the run.dir / sweep.dir+subdir patterns
      <job name>.log                  the job's log -> artifact role log; end time and status
      metrics.json, *.json            the app's own numbers -> metrics; every file -> output
    multirun/<date>/<time>/           a sweep: run_id hydra:<rel dir>, parent of its jobs
      multirun.yaml                   the sweep's hydra config and sweep overrides
      <num>/.hydra/...                one job each, laid out like a single run

``hydra.yaml`` holds absolute paths of the machine that ran (``runtime.cwd``,
``runtime.output_dir``); they are kept as tags, and the cwd is also mapped into the crawl root
through the output dir, which is the run folder itself.

Times: Hydra records none.  The start is read back from the folder name through its pattern
(``${now:%Y-%m-%d}`` and any other strftime format; the other interpolations are filled from
``hydra.yaml`` or matched loosely); for a sweep job that is the sweep's launch.  The end is the
timestamp of the last record of the job log (``[%(asctime)s]...`` as Hydra's job_logging
writes it) and the status is FAILED when that record is an ERROR or CRITICAL one, else
FINISHED; without a log (``hydra/job_logging=none``) both stay unknown.  Hydra writes local
wall-clock time without a zone: it is read as UTC.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

from mlcrawl.api import REDACTED, Artifact, BaseCrawler, Claims, CrawlContext, FolderShape, Metric, Param
from mlcrawl.api import Record, Run, Tag, flatten, is_secret_key, load_json, load_yaml, split_foreign
from mlcrawl.api import to_float, to_text

_HYDRA_DIR = ".hydra"
_SWEEP_FILE = "multirun.yaml"
_HYDRA_FILES = ("config.yaml", "overrides.yaml", "hydra.yaml")
_MAX_METRICS_JSON = 4 << 20
_MISSING = "???"  # Hydra's marker for a value not set (job.num in RUN mode)
_MAX_OUTPUT_FILES = 10_000
# Sweep roots are looked for this many folders above a job (the default subdir is one level).
_MAX_SWEEP_DEPTH = 3
_HYDRA_TAGS = (
    ("mode",), ("job", "name"), ("job", "num"), ("job", "id"), ("job", "chdir"), ("job", "override_dirname"),
    ("job", "config_name"), ("runtime", "version"), ("runtime", "cwd"),
    ("runtime", "output_dir"), ("sweeper", "_target_"), ("launcher", "_target_"),
)
_INTERPOLATION = re.compile(r"\$\{([^{}]*)\}")
# Interpolations of a dir pattern whose value hydra.yaml holds (the others match loosely).
_KNOWN_KEYS = {"hydra.job.name": ("job", "name"), "hydra.job.num": ("job", "num"),
               "hydra.job.id": ("job", "id"), "hydra.job.override_dirname": ("job", "override_dirname"),
               "hydra.job.config_name": ("job", "config_name")}
_LOG_TAIL = 64 << 10
_LOG_RECORD = re.compile(
    r"^\[?(\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2})(?:[,.](\d{1,6}))?\]?.*?"
    r"\b(DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)\b", re.MULTILINE)
_FAILED_LEVELS = {"ERROR", "CRITICAL", "FATAL"}


class HydraCrawler(BaseCrawler):
    """A Hydra run/job folder (holding ``.hydra/``) or a sweep root (``multirun.yaml``)."""

    name: ClassVar[str] = "hydra"
    claims = Claims(folders=(FolderShape(any_of=(_HYDRA_DIR, _SWEEP_FILE)),))
    version: ClassVar[int] = 2

    def match(self, path: Path, is_dir: bool) -> bool:
        """Hydra folders are claimed by ``match_folder``, which sees their contents."""
        return False

    def match_folder(self, path: Path, names: frozenset[str]) -> bool:
        """A folder holding ``.hydra/`` (a run or job) or ``multirun.yaml`` (a sweep)."""
        return _HYDRA_DIR in names or _SWEEP_FILE in names

    def folder_run_id(self, folder: Path, rel: str) -> str | None:
        """Each claimed folder is one run: ``hydra:<rel folder>``."""
        return f"{self.name}:{rel}"

    def crawl(self, unit: Path, ctx: CrawlContext) -> Iterator[Record]:
        """Yield the sweep run of a sweep root and/or the job run of a ``.hydra`` folder."""
        if (unit / _SWEEP_FILE).is_file():
            yield from crawl_sweep(unit, ctx)
        if (unit / _HYDRA_DIR).is_dir():
            yield from crawl_job(unit, ctx)


def crawl_sweep(unit: Path, ctx: CrawlContext) -> Iterator[Record]:
    """The sweep itself as a run: its overrides (the grid) and hydra facts as tags."""
    run_id = f"hydra:{ctx.relpath(unit)}"
    hydra = as_dict(read_yaml(unit / _SWEEP_FILE, ctx).get("hydra"))
    yield Run(run_id=run_id, source="hydra", source_run_id=ctx.relpath(unit),
              experiment=job_name(hydra), name=unit.name, dir=ctx.relpath(unit),
              start_time=time_from_pattern(dig(hydra, ("sweep", "dir")), hydra, str(unit.absolute())))
    yield from hydra_tags(run_id, hydra)
    yield from override_tags(run_id, task_overrides(hydra))
    yield Artifact(run_id, ctx.relpath(unit / _SWEEP_FILE), role="config")
    for path in sorted(p for p in unit.iterdir() if p.is_file() and p.name != _SWEEP_FILE):
        yield Artifact(run_id, ctx.relpath(path), role="output")


def crawl_job(unit: Path, ctx: CrawlContext) -> Iterator[Record]:
    """One run or sweep job: params, overrides, hydra facts, app metrics and files."""
    run_id = f"hydra:{ctx.relpath(unit)}"
    meta = unit / _HYDRA_DIR
    config = read_yaml(meta / "config.yaml", ctx)
    overrides = read_overrides(meta / "overrides.yaml", ctx)
    hydra = as_dict(read_yaml(meta / "hydra.yaml", ctx).get("hydra"))
    yield make_job_run(unit, ctx, run_id, hydra, read_job_log(unit, ctx, job_name(hydra)))
    yield from config_params(run_id, config, overrides)
    yield from override_tags(run_id, overrides)
    yield from hydra_tags(run_id, hydra)
    yield from local_cwd_tag(unit, ctx, run_id, hydra)
    yield from job_files(unit, ctx, run_id, job_name(hydra))


def read_yaml(path: Path, ctx: CrawlContext) -> dict[str, Any]:
    """A Hydra YAML file as a dict; missing or unreadable -> {} with a warning."""
    if not path.is_file():
        ctx.warn(f"{path.name} is missing; the run is read from what is there", path,
                 "missing_file")
        return {}
    try:
        data = load_yaml(ctx.read_bytes(path))
    except Exception as exc:  # noqa: BLE001 - any YAML error leaves the other files readable
        ctx.warn(f"{path.name} is not readable YAML: {exc}", path, "bad_yaml")
        return {}
    if data is None:
        return {}
    if not isinstance(data, dict):
        ctx.warn(f"{path.name} holds a {type(data).__name__}, not a mapping", path, "bad_yaml")
        return {}
    return data


def read_overrides(path: Path, ctx: CrawlContext) -> list[str]:
    """``overrides.yaml``: the task overrides as given on the command line."""
    if not path.is_file():
        ctx.warn("overrides.yaml is missing", path, "missing_file")
        return []
    try:
        data = load_yaml(ctx.read_bytes(path))
    except Exception as exc:  # noqa: BLE001 - the rest of the run stays readable
        ctx.warn(f"overrides.yaml is not readable YAML: {exc}", path, "bad_yaml")
        return []
    if data is None:
        return []
    if not isinstance(data, list):
        ctx.warn("overrides.yaml is not a list", path, "bad_yaml")
        return []
    return [str(item) for item in data]


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` when it is a dict, else an empty one."""
    return value if isinstance(value, dict) else {}


def dig(data: dict[str, Any], keys: tuple[str, ...]) -> Any:
    """``data[k1][k2]...`` or None when a level is missing."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def job_name(hydra: dict[str, Any]) -> str | None:
    """``hydra.job.name`` (the app's name), the experiment of its runs."""
    name = dig(hydra, ("job", "name"))
    return str(name) if name is not None else None


def task_overrides(hydra: dict[str, Any]) -> list[str]:
    """``hydra.overrides.task`` (in ``multirun.yaml``: the sweep definitions)."""
    task = dig(hydra, ("overrides", "task"))
    return [str(item) for item in task] if isinstance(task, list) else []


def make_job_run(unit: Path, ctx: CrawlContext, run_id: str, hydra: dict[str, Any],
                 log: tuple[datetime, str] | None) -> Run:
    """The job's run; a sweep job is grouped under, and a child of, its sweep root."""
    sweep = None if hydra.get("mode") == "RUN" else find_sweep_root(unit, ctx)
    override_dirname = dig(hydra, ("job", "override_dirname"))
    output_dir = dig(hydra, ("runtime", "output_dir"))
    where = output_dir if isinstance(output_dir, str) else str(unit.absolute())
    return Run(
        start_time=time_from_pattern(dir_pattern(hydra), hydra, where),
        end_time=log[0] if log else None,
        status=log[1] if log else None,
        run_id=run_id,
        source="hydra",
        source_run_id=ctx.relpath(unit),
        experiment=job_name(hydra),
        name=redact_override(str(override_dirname)) if override_dirname else unit.name,
        parent_run_id=f"hydra:{ctx.relpath(sweep)}" if sweep else None,
        group=ctx.relpath(sweep) if sweep else None,
        dir=ctx.relpath(unit),
    )


def dir_pattern(hydra: dict[str, Any]) -> str | None:
    """The pattern the job's folder was named by: ``run.dir``, or ``sweep.dir/sweep.subdir``."""
    if hydra.get("mode") == "MULTIRUN":
        sweep_dir, subdir = dig(hydra, ("sweep", "dir")), dig(hydra, ("sweep", "subdir"))
        if isinstance(sweep_dir, str) and isinstance(subdir, (str, int)):
            return f"{sweep_dir.rstrip('/')}/{subdir}"
        return None
    run_dir = dig(hydra, ("run", "dir"))
    return run_dir if isinstance(run_dir, str) else None


def time_from_pattern(pattern: Any, hydra: dict[str, Any], path: str) -> datetime | None:
    """The time the ``${now:FMT}`` parts of ``pattern`` put into ``path`` (its tail), or None."""
    if not isinstance(pattern, str) or "${now:" not in pattern:
        return None
    regex, formats, pos = [], [], 0
    for found in _INTERPOLATION.finditer(pattern):
        regex.append(re.escape(pattern[pos:found.start()]))
        expression = found.group(1).strip()
        if expression.startswith("now:"):
            formats.append(expression[len("now:"):])
            regex.append(f"(?P<t{len(formats)}>.+?)")
        else:
            known = dig(hydra, _KNOWN_KEYS[expression]) if expression in _KNOWN_KEYS else None
            regex.append(re.escape(str(known)) if known not in (None, _MISSING) else ".*?")
        pos = found.end()
    regex.append(re.escape(pattern[pos:]))
    match = re.search("(?:^|/)" + "".join(regex).lstrip("/") + "/?$", path.replace(os.sep, "/"))
    if match is None:
        return None
    values = [match.group(f"t{i}") for i in range(1, len(formats) + 1)]
    try:
        parsed = datetime.strptime("\x00".join(values), "\x00".join(formats))
    except (ValueError, re.error):  # strptime compiles a format naming a field twice into a bad regex
        return None
    return parsed.replace(tzinfo=timezone.utc)


def read_job_log(unit: Path, ctx: CrawlContext, name: str | None) -> tuple[datetime, str] | None:
    """(time of the last record, FINISHED or FAILED) from the tail of ``<job name>.log``."""
    path = unit / f"{name}.log"
    if not name or not path.is_file():
        return None
    size = ctx.size(path)
    with ctx.open(path) as f:
        f.seek(max(0, size - _LOG_TAIL))
        tail = f.read(_LOG_TAIL).decode("utf-8", errors="replace")
    last = None
    for last in _LOG_RECORD.finditer(tail):
        pass
    if last is None:
        return None
    stamp, fraction, level = last.groups()
    try:
        when = datetime.strptime(stamp.replace("T", " "), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    when = when.replace(microsecond=int((fraction or "0").ljust(6, "0")), tzinfo=timezone.utc)
    return when, "FAILED" if level in _FAILED_LEVELS else "FINISHED"


def find_sweep_root(unit: Path, ctx: CrawlContext) -> Path | None:
    """The nearest folder above ``unit`` holding ``multirun.yaml``, within the crawl root."""
    for crawler, folder in reversed(ctx.enclosing):
        if crawler == HydraCrawler.name and (folder / _SWEEP_FILE).is_file():
            return folder
    for depth, folder in enumerate(unit.parents):
        if depth >= _MAX_SWEEP_DEPTH or not folder.is_relative_to(ctx.root):
            break
        if (folder / _SWEEP_FILE).is_file():
            return folder
    return None


def override_key(override: str) -> str:
    """The config key an override sets: ``+a.b=1`` -> ``a.b``, ``db@pkg=x`` -> ``db``."""
    key = override.split("=", 1)[0].lstrip("+~")
    return key.split("@", 1)[0].strip()


def config_params(run_id: str, config: dict[str, Any], overrides: list[str]) -> Iterator[Param]:
    """Flattened resolved config; keys (or groups) set by an override get origin ``override``."""
    overridden = {override_key(o) for o in overrides}
    for key, value in flatten(config):
        hit = key in overridden or any(key.startswith(f"{k}.") for k in overridden)
        yield Param(run_id, key, to_text(value), origin="override" if hit else "config")


def override_tags(run_id: str, overrides: list[str]) -> Iterator[Tag]:
    """Each override as given, in order: ``override.<i>`` = ``key=value``."""
    for index, override in enumerate(overrides):
        yield Tag(run_id, f"override.{index}", redact_override(override))


def redact_override(text: str) -> str:
    """Overrides (``k=v`` items, comma-joined in ``override_dirname``) with secret values hidden;
    the key names the secret, so the record-level redaction of tag keys cannot see it."""
    items = text.split(",")
    return ",".join(f"{item.split('=', 1)[0]}={REDACTED}"
                    if "=" in item and is_secret_key(override_key(item)) else item
                    for item in items)


def hydra_tags(run_id: str, hydra: dict[str, Any]) -> Iterator[Tag]:
    """Mode, job, runtime and config-group choices of ``hydra.yaml`` as ``hydra.*`` tags."""
    for keys in _HYDRA_TAGS:
        value = dig(hydra, keys)
        if value is not None and value != _MISSING:
            text = to_text(value) or ""
            yield Tag(run_id, "hydra." + ".".join(keys),
                      redact_override(text) if keys == ("job", "override_dirname") else text)
    for group, choice in as_dict(dig(hydra, ("runtime", "choices"))).items():
        yield Tag(run_id, f"hydra.runtime.choices.{group}", to_text(choice))


def local_cwd_tag(unit: Path, ctx: CrawlContext, run_id: str,
                  hydra: dict[str, Any]) -> Iterator[Tag]:
    """``hydra.runtime.cwd_local``: the job's cwd inside the crawl root, for relative paths.

    ``runtime.output_dir`` is this folder as seen on the machine that ran; the tail both
    share tells which foreign prefix this copy stands for.
    """
    cwd, output_dir = dig(hydra, ("runtime", "cwd")), dig(hydra, ("runtime", "output_dir"))
    if not (isinstance(cwd, str) and isinstance(output_dir, str)):
        return
    local = map_through_anchor(cwd, output_dir, unit)
    if local is not None and local.is_relative_to(ctx.root):
        yield Tag(run_id, "hydra.runtime.cwd_local", ctx.relpath(local))


def map_through_anchor(foreign: str, anchor_foreign: str, anchor_local: Path) -> Path | None:
    """``foreign`` mapped here, given that ``anchor_foreign`` is ``anchor_local`` here."""
    anchor_parts = split_foreign(anchor_foreign)
    local_parts = list(Path(os.path.abspath(anchor_local)).parts)
    shared = 0
    while (shared < min(len(anchor_parts), len(local_parts) - 1)
           and anchor_parts[-1 - shared] == local_parts[-1 - shared]):
        shared += 1
    foreign_prefix = anchor_parts[: len(anchor_parts) - shared]
    parts = split_foreign(foreign)
    if shared == 0 or parts[: len(foreign_prefix)] != foreign_prefix:
        return None
    return Path(*local_parts[: len(local_parts) - shared], *parts[len(foreign_prefix):])


def job_files(unit: Path, ctx: CrawlContext, run_id: str, name: str | None) -> Iterator[Record]:
    """The ``.hydra`` files, the job log, every output file, and the metrics of JSON outputs."""
    for file_name in _HYDRA_FILES:
        if (unit / _HYDRA_DIR / file_name).is_file():
            yield Artifact(run_id, ctx.relpath(unit / _HYDRA_DIR / file_name), role="config")
    for path in list_outputs(unit, ctx):
        if path.parent == unit and name and path.name == f"{name}.log":
            yield Artifact(run_id, ctx.relpath(path), role="log")
            continue
        yield Artifact(run_id, ctx.relpath(path), role="output")
        if path.parent == unit and path.suffix == ".json":
            yield from read_app_metrics(path, ctx, run_id)


def list_outputs(unit: Path, ctx: CrawlContext) -> list[Path]:
    """Files the job wrote under its folder, except ``.hydra/`` and nested Hydra runs."""
    found: list[Path] = []
    for folder, dirs, files in os.walk(unit):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if d != _HYDRA_DIR
                         and not (here / d / _HYDRA_DIR).is_dir()
                         and not (here / d / _SWEEP_FILE).is_file())
        found.extend(here / f for f in sorted(files))
        if len(found) > _MAX_OUTPUT_FILES:
            ctx.warn(f"more than {_MAX_OUTPUT_FILES} output files; the rest are not listed",
                     unit, "too_many_files")
            return found[:_MAX_OUTPUT_FILES]
    return found


def read_app_metrics(path: Path, ctx: CrawlContext, run_id: str) -> Iterator[Metric]:
    """Numbers in a JSON file the app wrote: an object -> one point per numeric leaf; a list
    of objects -> a history, stepped by its ``step`` (else its position) and ``epoch``."""
    if path.stat().st_size > _MAX_METRICS_JSON:
        return
    try:
        data = load_json(ctx.read_bytes(path))
    except (ValueError, UnicodeDecodeError) as exc:
        ctx.warn(f"{path.name} is not valid JSON; kept as an output only: {exc}", path, "bad_json")
        return
    if isinstance(data, dict):
        yield from numeric_points(run_id, data, step=None, epoch=None)
    elif isinstance(data, list):
        for index, row in enumerate(data):
            if isinstance(row, dict):
                step = as_int(row.get("step"))
                yield from numeric_points(run_id, row, step=index if step is None else step,
                                          epoch=as_int(row.get("epoch")))


def numeric_points(run_id: str, data: dict[str, Any], step: int | None,
                   epoch: int | None) -> Iterator[Metric]:
    """One metric point per numeric leaf (booleans and text are not metrics)."""
    for key, value in flatten(data):
        number = to_float(value) if isinstance(value, (int, float)) else None
        if number is not None and key not in ("step", "epoch"):
            yield Metric(run_id, key, number, step=step, epoch=epoch)


def as_int(value: Any) -> int | None:
    """An integer index, or None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None
