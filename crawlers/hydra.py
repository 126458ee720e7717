"""Hydra output folders: single runs, multirun sweeps and their jobs, with the jobs' outputs.

Layout (``hydra.run.dir`` / ``hydra.sweep.dir`` are user-chosen; these are the defaults)::

    outputs/<date>/<time>/            a single run: run_id hydra:<rel dir>
      .hydra/config.yaml              the resolved job config -> params
      .hydra/overrides.yaml           command-line overrides -> tags override.<i>
      .hydra/hydra.yaml               mode, job name/num/id, choices, runtime cwd/output_dir
      <job name>.log                  the job's log -> artifact role log
      metrics.json, *.json            the app's own numbers -> metrics; every file -> output
    multirun/<date>/<time>/           a sweep: run_id hydra:<rel dir>, parent of its jobs
      multirun.yaml                   the sweep's hydra config and sweep overrides
      <num>/.hydra/...                one job each, laid out like a single run

``hydra.yaml`` holds absolute paths of the machine that ran (``runtime.cwd``,
``runtime.output_dir``); they are kept as tags, and the cwd is also mapped into the crawl root
through the output dir, which is the run folder itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from mlcrawl.api import (
    REDACTED,
    Artifact,
    BaseCrawler,
    Claims,
    CrawlContext,
    FolderShape,
    Metric,
    Param,
    Record,
    Run,
    Tag,
    flatten,
    is_secret_key,
    load_json,
    load_yaml,
    split_foreign,
    to_float,
    to_text,
)

_HYDRA_DIR = ".hydra"
_SWEEP_FILE = "multirun.yaml"
_HYDRA_FILES = ("config.yaml", "overrides.yaml", "hydra.yaml")
_MAX_METRICS_JSON = 4 << 20
_MISSING = "???"  # Hydra's marker for a value not set (job.num in RUN mode)
_MAX_OUTPUT_FILES = 10_000
# Sweep roots are looked for this many folders above a job (the default subdir is one level).
_MAX_SWEEP_DEPTH = 3
_HYDRA_TAGS = (
    ("mode",), ("job", "name"), ("job", "num"), ("job", "id"), ("job", "override_dirname"),
    ("job", "config_name"), ("runtime", "version"), ("runtime", "cwd"),
    ("runtime", "output_dir"), ("sweeper", "_target_"), ("launcher", "_target_"),
)


class HydraCrawler(BaseCrawler):
    """A Hydra run/job folder (holding ``.hydra/``) or a sweep root (``multirun.yaml``)."""

    name: ClassVar[str] = "hydra"
    claims = Claims(folders=(FolderShape(any_of=(_HYDRA_DIR, _SWEEP_FILE)),))
    version: ClassVar[int] = 1

    def match(self, path: Path, is_dir: bool) -> bool:
        """Hydra folders are claimed by ``match_folder``, which sees their contents."""
        return False

    def match_folder(self, path: Path, names: frozenset[str]) -> bool:
        """A folder holding ``.hydra/`` (a run or job) or ``multirun.yaml`` (a sweep)."""
        return _HYDRA_DIR in names or _SWEEP_FILE in names

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
              experiment=job_name(hydra), name=unit.name, dir=ctx.relpath(unit))
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
    yield make_job_run(unit, ctx, run_id, hydra)
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


def make_job_run(unit: Path, ctx: CrawlContext, run_id: str, hydra: dict[str, Any]) -> Run:
    """The job's run; a sweep job is grouped under, and a child of, its sweep root."""
    sweep = None if hydra.get("mode") == "RUN" else find_sweep_root(unit, ctx)
    override_dirname = dig(hydra, ("job", "override_dirname"))
    return Run(
        run_id=run_id,
        source="hydra",
        source_run_id=ctx.relpath(unit),
        experiment=job_name(hydra),
        name=redact_override(str(override_dirname)) if override_dirname else unit.name,
        parent_run_id=f"hydra:{ctx.relpath(sweep)}" if sweep else None,
        group=ctx.relpath(sweep) if sweep else None,
        dir=ctx.relpath(unit),
    )


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
