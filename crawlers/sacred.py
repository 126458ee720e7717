"""Sacred FileStorageObserver run folders: run, config, metric points, sources, resources.

Layout (the observer's base folder may sit anywhere; ids are unique only inside it)::

    <base>/                          run_id sacred:<rel path of the run folder>
      _sources/<name>_<md5>.py       copies of the experiment's sources (shared by runs)
      _resources/<name>_<md5>.<ext>  copies of files the runs opened (shared by runs)
      <id>/
        run.json                     status, times, host, experiment, git, sources, resources,
                                     artifacts, meta (command, config_updates), fail_trace
        config.json                  the full config (with the auto ``seed``) -> params
        metrics.json                 {name: {steps, timestamps, values}} -> metric points
        info.json                    free info the run added -> tags
        cout.txt                     captured output -> log artifact
        <artifact files>             files added with add_artifact

Paths in ``run.json`` are as written on the machine that ran: ``experiment.base_dir`` and
resource originals are absolute there, stored copies are relative to the process's cwd.  They
are mapped into the crawl root (see ``mlcrawl.paths``).  Sacred writes naive UTC times.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from mlcrawl.api import Artifact, BaseCrawler, Claims, CrawlContext, Edge, FolderShape, Metric, Param, Record
from mlcrawl.api import Run, Tag, flatten, load_json, map_foreign_path, parse_iso, redact_text, split_foreign
from mlcrawl.api import to_float, to_text

_STATUS = {"COMPLETED": "FINISHED", "INTERRUPTED": "KILLED", "QUEUED": "SCHEDULED",
           "TIMEOUT": "KILLED", "TIMED_OUT": "KILLED"}
_MD5_IN_NAME = re.compile(r"_([0-9a-f]{32})(?:\.[^./\\]*)?$")
_MAX_TRACE_CHARS = 20_000


class SacredCrawler(BaseCrawler):
    """One FileStorageObserver run folder (``<base>/<id>/run.json``) -> one run."""

    name: ClassVar[str] = "sacred"
    claims = Claims(folders=(FolderShape(all_of=("run.json",), any_of=("config.json", "cout.txt")),))
    version: ClassVar[int] = 1

    def match(self, path: Path, is_dir: bool) -> bool:
        """Sacred run folders are claimed by ``match_folder``, which sees their contents."""
        return False

    def match_folder(self, path: Path, names: frozenset[str]) -> bool:
        """A folder holding ``run.json`` beside ``config.json`` or ``cout.txt``."""
        return "run.json" in names and ("config.json" in names or "cout.txt" in names)

    def folder_run_id(self, folder: Path, rel: str) -> str | None:
        """Each claimed folder is one run: ``sacred:<rel folder>``."""
        return f"{self.name}:{rel}"

    def crawl(self, unit: Path, ctx: CrawlContext) -> Iterator[Record]:
        """Yield the run with its params, tags, metric points, files and declared edges."""
        run_json = read_run_json(unit / "run.json", ctx)
        run_id = f"sacred:{ctx.relpath(unit)}"
        experiment = as_dict(run_json.get("experiment"))
        yield make_run(unit, ctx, run_id, run_json, experiment)
        config_updates = as_dict(as_dict(run_json.get("meta")).get("config_updates"))
        yield from read_config(unit / "config.json", ctx, run_id, config_updates)
        yield from make_tags(run_id, run_json, experiment)
        yield from read_info(unit / "info.json", ctx, run_id)
        yield from read_metrics(unit / "metrics.json", ctx, run_id)
        yield from read_sources(unit, ctx, run_id, experiment)
        yield from read_resources(unit, ctx, run_id, run_json.get("resources"))
        yield from read_artifacts(unit, ctx, run_id, run_json.get("artifacts"))
        if (unit / "cout.txt").is_file():
            yield Artifact(run_id, ctx.relpath(unit / "cout.txt"), role="log")


def read_run_json(path: Path, ctx: CrawlContext) -> dict[str, Any]:
    """``run.json`` as a dict; raises ValueError naming the file when it cannot be read."""
    try:
        data = load_json(ctx.read_bytes(path))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{ctx.relpath(path)}: Sacred run.json is not valid JSON "
                         f"(truncated or still being written?): {exc}") from exc
    if not isinstance(data, dict):  # bad file content, not a caller's type error
        raise ValueError(f"{ctx.relpath(path)}: Sacred run.json holds a "  # noqa: TRY004
                         f"{type(data).__name__}, not an object")
    return data


def read_optional_json(path: Path, ctx: CrawlContext) -> Any:
    """A side file's JSON, or None when it is absent or unreadable (then with a warning)."""
    if not path.is_file():
        return None
    try:
        return load_json(ctx.read_bytes(path))
    except (ValueError, UnicodeDecodeError) as exc:
        ctx.warn(f"{path.name} is not valid JSON, skipped: {exc}", path, "bad_json")
        return None
    except OSError as exc:  # EIO, EACCES, a FIFO or a symlink swapped in: the run is still read
        ctx.warn(f"{path.name} cannot be read, skipped: {exc}", path, "unreadable_file")
        return None


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` when it is a dict, else an empty one (fields of hand-damaged files)."""
    return value if isinstance(value, dict) else {}


def make_run(unit: Path, ctx: CrawlContext, run_id: str, run_json: dict[str, Any],
             experiment: dict[str, Any]) -> Run:
    """The run row: Sacred's own id is the folder name; status normalised."""
    status = run_json.get("status")
    return Run(
        run_id=run_id,
        source="sacred",
        source_run_id=unit.name,
        experiment=to_text(experiment.get("name")),
        name=to_text(as_dict(run_json.get("meta")).get("comment")),
        status=normalise_status(status) if isinstance(status, str) else None,
        start_time=parse_iso(run_json.get("start_time")),
        end_time=parse_iso(run_json.get("stop_time")),
        git_commit=first_commit(experiment.get("repositories")),
        dir=ctx.relpath(unit),
    )


def normalise_status(status: str) -> str:
    """Sacred's status in the catalog's vocabulary (COMPLETED -> FINISHED ...)."""
    upper = status.upper()
    return _STATUS.get(upper, upper)


def first_commit(repositories: Any) -> str | None:
    """The commit of the first recorded git repository."""
    for repo in repositories if isinstance(repositories, list) else []:
        if isinstance(repo, dict) and repo.get("commit"):
            return str(repo["commit"])
    return None


def read_config(path: Path, ctx: CrawlContext, run_id: str,
                config_updates: dict[str, Any]) -> Iterator[Param]:
    """Flattened ``config.json``; keys set on the command line get origin ``config_update``."""
    config = read_optional_json(path, ctx)
    if config is None:
        return
    if not isinstance(config, dict):
        ctx.warn(f"config.json holds a {type(config).__name__}, not an object", path, "bad_json")
        return
    updated = {key for key, _ in flatten(config_updates)}
    for key, value in flatten(config):
        origin = "config_update" if key in updated else "config"
        yield Param(run_id, key, to_text(value), origin=origin)


def make_tags(run_id: str, run_json: dict[str, Any], experiment: dict[str, Any]) -> Iterator[Tag]:
    """Host, experiment, git, command and outcome facts of ``run.json`` as tags."""
    meta = as_dict(run_json.get("meta"))
    for key in ("status", "command", "heartbeat", "result"):
        if run_json.get(key) is not None:
            yield Tag(run_id, f"sacred.{key}", to_text(run_json[key]))
    for key in ("mainfile", "base_dir", "dependencies", "doc"):
        if experiment.get(key) is not None:
            yield Tag(run_id, f"sacred.experiment.{key}", to_text(experiment[key]))
    yield from host_tags(run_id, as_dict(run_json.get("host")))
    yield from git_tags(run_id, experiment.get("repositories"))
    for key, value in flatten(as_dict(meta.get("config_updates")), "sacred.meta.config_updates"):
        yield Tag(run_id, key, to_text(value))
    if meta.get("named_configs"):
        yield Tag(run_id, "sacred.meta.named_configs", to_text(meta["named_configs"]))
    for key, value in as_dict(meta.get("options")).items():
        if value not in (None, False, [], ""):
            yield Tag(run_id, f"sacred.meta.options.{key}", redact_text(to_text(value) or ""))
    if run_json.get("fail_trace"):
        yield Tag(run_id, "sacred.fail_trace", trace_text(run_json["fail_trace"]))


def host_tags(run_id: str, host: dict[str, Any]) -> Iterator[Tag]:
    """``host.*`` tags: hostname, os, python_version, cpu, gpus, captured ENV."""
    for key, value in flatten(host):
        if value not in (None, {}, []):
            yield Tag(run_id, f"sacred.host.{key}", to_text(value))


def git_tags(run_id: str, repositories: Any) -> Iterator[Tag]:
    """``git.url``/``git.commit``/``git.dirty`` of the first repository, indexed for the rest."""
    repos = [r for r in repositories if isinstance(r, dict)] if isinstance(repositories, list) else []
    for index, repo in enumerate(repos):
        prefix = "git" if index == 0 else f"git.{index}"
        for key in ("url", "commit", "dirty"):
            if repo.get(key) is not None:
                value = repo[key]
                yield Tag(run_id, f"{prefix}.{key}",
                          redact_text(to_text(value) or "") if key == "url" else to_text(value))


def trace_text(fail_trace: Any) -> str:
    """The failure traceback as one text (its tail when huge), secrets scrubbed."""
    text = "".join(fail_trace) if isinstance(fail_trace, list) else str(fail_trace)
    return redact_text(text[-_MAX_TRACE_CHARS:])


def read_info(path: Path, ctx: CrawlContext, run_id: str) -> Iterator[Tag]:
    """``info.json`` (what the run added to ``_run.info``) as ``sacred.info.*`` tags."""
    info = read_optional_json(path, ctx)
    if isinstance(info, dict):
        for key, value in flatten(info):
            yield Tag(run_id, f"sacred.info.{key}", to_text(value))


def read_metrics(path: Path, ctx: CrawlContext, run_id: str) -> Iterator[Metric]:
    """Every point of ``metrics.json`` with its step and timestamp."""
    metrics = read_optional_json(path, ctx)
    if metrics is None:
        return
    if not isinstance(metrics, dict):
        ctx.warn("metrics.json is not an object of series", path, "bad_json")
        return
    for key, series in metrics.items():
        yield from points_of_series(str(key), as_dict(series), ctx, path, run_id)


def points_of_series(key: str, series: dict[str, Any], ctx: CrawlContext, path: Path,
                     run_id: str) -> Iterator[Metric]:
    """The points of one metric series; unequal column lengths are warned about and cut."""
    steps, stamps, values = (series.get(k) if isinstance(series.get(k), list) else []
                             for k in ("steps", "timestamps", "values"))
    if not len(steps) == len(stamps) == len(values):
        ctx.warn(f"metric {key!r}: steps/timestamps/values lengths differ "
                 f"({len(steps)}/{len(stamps)}/{len(values)}); read the common part",
                 path, "ragged_series")
    skipped = 0
    for step, stamp, raw in zip(steps, stamps, values):
        value = to_float(raw)
        if value is None:
            skipped += 1
            continue
        yield Metric(run_id, key, value, step=int(step) if isinstance(step, int) else None,
                     timestamp=parse_iso(stamp))
    if skipped:
        ctx.warn(f"metric {key!r}: {skipped} value(s) are not numbers, skipped", path, "bad_value")


def read_sources(unit: Path, ctx: CrawlContext, run_id: str,
                 experiment: dict[str, Any]) -> Iterator[Record]:
    """Stored source copies as artifacts; the original source file -> run as declared input."""
    base_dir = experiment.get("base_dir") if isinstance(experiment.get("base_dir"), str) else ""
    for entry in experiment.get("sources") or []:
        if not (isinstance(entry, list) and len(entry) == 2):
            continue
        name, stored = str(entry[0]), str(entry[1])
        copy = stored_copy(unit, ctx, stored, "_sources")
        copy_rel = ctx.relpath(copy) if copy else None
        if copy_rel:
            yield Artifact(run_id, copy_rel, role="source", facts={"source": name})
        original = map_foreign_path(f"{base_dir}/{name}" if base_dir else name, ctx.root, unit)
        src = ctx.relpath(original.path) if original else copy_rel
        if src:
            yield Edge(src, run_id, relation="sacred_source", evidence=ctx.relpath(unit / "run.json"),
                       dst_type="run", confidence=original.confidence if original else 1.0,
                       md5=md5_of_copy(stored), facts={"name": name, "stored_copy": copy_rel})


def read_resources(unit: Path, ctx: CrawlContext, run_id: str, resources: Any) -> Iterator[Record]:
    """Files the run opened: the original and its stored copy as artifacts, original -> run."""
    for entry in resources if isinstance(resources, list) else []:
        if not (isinstance(entry, list) and len(entry) == 2):
            continue
        raw, stored = str(entry[0]), str(entry[1])
        copy = stored_copy(unit, ctx, stored, "_resources")
        copy_rel = ctx.relpath(copy) if copy else None
        original = map_foreign_path(raw, ctx.root, unit)
        original_rel = ctx.relpath(original.path) if original else None
        facts = {"original_path": raw, "stored_copy": copy_rel}
        for rel in dict.fromkeys(p for p in (original_rel, copy_rel) if p):
            yield Artifact(run_id, rel, role="resource", facts=facts)
        src = original_rel or copy_rel
        if src:
            yield Edge(src, run_id, relation="sacred_resource", evidence=ctx.relpath(unit / "run.json"),
                       dst_type="run", confidence=original.confidence if original else 1.0,
                       md5=md5_of_copy(stored), facts=facts)
        else:
            ctx.warn(f"resource {raw!r} found neither as a file here nor as its stored copy",
                     unit / "run.json", "unresolved_path")


def stored_copy(unit: Path, ctx: CrawlContext, stored: str, folder: str) -> Path | None:
    """A stored copy: ``<base>/<folder>/...`` beside the run folder, else by its longest tail."""
    parts = split_foreign(stored)
    if folder in parts:
        beside = unit.parent.joinpath(*parts[len(parts) - parts[::-1].index(folder) - 1:])
        if beside.is_file():
            return beside
    mapped = map_foreign_path(stored, ctx.root, unit)
    return mapped.path if mapped else None


def md5_of_copy(stored: str) -> str | None:
    """The md5 Sacred put in a stored copy's name (``iris_<md5>.csv``)."""
    found = _MD5_IN_NAME.search(stored)
    return found.group(1) if found else None


def read_artifacts(unit: Path, ctx: CrawlContext, run_id: str, artifacts: Any) -> Iterator[Record]:
    """Files added with ``add_artifact``: run -> file; a listed file that is gone is warned about."""
    for name in artifacts if isinstance(artifacts, list) else []:
        parts = split_foreign(str(name))
        if not parts:
            continue
        path = unit.joinpath(*parts)
        rel = ctx.relpath(path)
        if not path.is_file():
            ctx.warn(f"artifact {name!r} listed in run.json is missing", unit / "run.json",
                     "missing_file")
        yield Artifact(run_id, rel, role="artifact")
        yield Edge(run_id, rel, relation="sacred_artifact", evidence=ctx.relpath(unit / "run.json"),
                   src_type="run")
