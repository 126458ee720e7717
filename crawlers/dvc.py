"""Crawls DVC projects: dvc.yaml stages with their dvc.lock state, params, metrics, .dvc files.

    <project>/                      a folder holding dvc.yaml is one unit
      dvc.yaml                      stages: cmd, deps, outs, params, metrics, plots, wdir,
                                    foreach/matrix groups, vars; top-level metrics
      dvc.lock                      schema 2.0: {schema, stages: {name: {cmd, deps, outs, params}}}
                                    schema 1.x: {name: {cmd, deps, outs, params}} (no schema key)
                                    deps/outs: [{path, md5, size, hash, nfiles}], params: {file: {key: value}}
      params.yaml                   default params file and interpolation context
      metrics/scores.json           declared metrics files (JSON, YAML or TOML)
    data/raw/iris.csv.dvc           each *.dvc file is its own unit: outs [{path, md5, size, hash}]

Each concrete stage becomes a Run ``dvc:<dvc.yaml path>:<stage>``: status FINISHED when the
lock has it, None (tag ``locked=false``) when it never ran.  Deps, outs, params files and the
scripts named in ``cmd`` become declared Edges to/from the stage node ``<dvc.yaml path>:<stage>``
carrying DVC's md5 (a directory's md5 ends in ``.dir``: the md5 of its JSON listing, kept as is).
"""

from __future__ import annotations

import os
import posixpath
import re
import shlex
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml

from mlcrawl.api import BaseCrawler, Claims, CrawlContext, Edge, FolderShape, Metric, Param, Record, Run, Tag
from mlcrawl.api import flatten, load_json, load_yaml, redact_text, to_text

from ._dvc_expand import ExpandedStage, Interpolator, expand_stages

DVC_YAML = "dvc.yaml"
DVC_LOCK = "dvc.lock"
DEFAULT_PARAMS = "params.yaml"
MAX_SIDE_FILE = 16 << 20  # params/metrics files larger than this are not metrics files
SCRIPT_SUFFIXES = (".py", ".sh", ".r", ".R", ".jl", ".ipynb", ".pl", ".rb", ".js", ".ts", ".scala")
_REMOTE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_FACT_KEYS = ("size", "nfiles", "hash", "etag", "version_id", "checksum")


@dataclass(frozen=True, slots=True)
class Project:
    """What one crawl of a DVC project folder knows: where things are and how to read them."""

    folder: Path
    yaml_rel: str
    lock_rel: str
    ctx: CrawlContext


class DvcCrawler(BaseCrawler):
    """Reads dvc.yaml/dvc.lock pipelines (folder units) and ``*.dvc`` files (file units)."""

    name: ClassVar[str] = "dvc"
    claims = Claims(files=("*.dvc",), folders=(FolderShape(any_of=(DVC_YAML,)),))
    version: ClassVar[int] = 1

    def match(self, path: Path, is_dir: bool) -> bool:
        """Claim ``*.dvc`` files; the ``.dvc/`` folder and dvc.yaml folders are not claimed here."""
        return not is_dir and path.suffix == ".dvc"

    def match_folder(self, path: Path, names: frozenset[str]) -> bool:
        """Claim a folder holding ``dvc.yaml``: a DVC project (or sub-project)."""
        return DVC_YAML in names

    def crawl(self, unit: Path, ctx: CrawlContext) -> Iterator[Record]:
        """Yield the records of a DVC project folder or of one ``.dvc`` file."""
        if unit.is_dir():
            yield from crawl_pipeline(unit, ctx)
        else:
            yield from crawl_dvc_file(unit, ctx)


# --- dvc.yaml + dvc.lock ------------------------------------------------------------------


def crawl_pipeline(folder: Path, ctx: CrawlContext) -> Iterator[Record]:
    """Runs, params, metrics, tags and declared edges of every stage of one dvc.yaml."""
    project = Project(folder, ctx.relpath(folder / DVC_YAML), ctx.relpath(folder / DVC_LOCK), ctx)
    pipeline = read_pipeline(project)
    lock = read_lock(project)
    side_cache: dict[str, Any] = {}
    interp = Interpolator(load_interpolation_context(project, pipeline, side_cache))
    stages = list(expand_stages(pipeline.get("stages") or {}, interp))
    if interp.unresolved:
        ctx.warn(f"dvc.yaml: could not resolve {', '.join(sorted(interp.unresolved))}", folder / DVC_YAML)
    top_metrics = [str(m) for m in _entries(pipeline.get("metrics"))]
    declared = {stage.name for stage in stages}
    stages += [ExpandedStage(name, None, {}) for name in lock if name not in declared]
    for stage in stages:
        yield from crawl_stage(project, stage, lock.get(stage.name), top_metrics, side_cache)


def read_pipeline(project: Project) -> dict:
    """dvc.yaml as a mapping; raise when it is not YAML or not a mapping."""
    path = project.folder / DVC_YAML
    try:
        data = load_yaml(project.ctx.read_bytes(path))
    except yaml.YAMLError as exc:
        raise ValueError(f"{project.yaml_rel}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ValueError(f"{project.yaml_rel}: expected a mapping, found {type(data).__name__}")
    return dict(data)


def read_lock(project: Project) -> dict[str, dict]:
    """The stages of dvc.lock by name, for schema 2.0 and the older top-level 1.x layout."""
    path = project.folder / DVC_LOCK
    if not path.is_file():
        return {}
    try:
        data = load_yaml(project.ctx.read_bytes(path))
    except yaml.YAMLError as exc:
        project.ctx.warn(f"dvc.lock is not valid YAML, stages read as unlocked: {exc}", path)
        return {}
    if not isinstance(data, Mapping):
        return {}
    # Schema 2.0 nests stages under "stages"; DVC 1.x wrote stage names at the top level.
    stages = data.get("stages") if "schema" in data else data
    if not isinstance(stages, Mapping):
        return {}
    return {str(name): entry for name, entry in stages.items() if isinstance(entry, Mapping)}


def load_interpolation_context(project: Project, pipeline: Mapping, side_cache: dict) -> dict:
    """The ``${...}`` context: params.yaml beside dvc.yaml, then each ``vars`` entry in order."""
    context: dict = {}
    default = project.folder / DEFAULT_PARAMS
    if default.is_file():
        context.update(_as_dict(read_side_file(project, default, side_cache)))
    for entry in _entries(pipeline.get("vars")):
        if isinstance(entry, Mapping):
            context.update(entry)
        elif isinstance(entry, str):
            file_name, _, keys = entry.partition(":")
            values = _as_dict(read_side_file(project, project.folder / file_name, side_cache))
            wanted = [k.strip() for k in keys.split(",") if k.strip()]
            context.update({k: values[k] for k in wanted if k in values} if wanted else values)
    return context


def crawl_stage(
    project: Project, stage: ExpandedStage, locked: Mapping | None, top_metrics: list[str], side_cache: dict
) -> Iterator[Record]:
    """The run of one stage and its declared lineage."""
    definition = stage.definition
    wdir = str(definition.get("wdir") or ".")
    node = f"{project.yaml_rel}:{stage.name}"
    run_id = f"dvc:{node}"
    yield Run(
        run_id=run_id,
        source="dvc",
        source_run_id=node,
        name=stage.name,
        status="FINISHED" if locked is not None else None,
        dir=project.ctx.relpath(project.folder),
        group=stage.group,
    )
    yield from stage_tags(run_id, stage, locked)
    changed = changed_params(project, wdir, definition, locked, side_cache)
    if changed:
        yield Tag(run_id, "params_changed", ", ".join(changed))
    yield from stage_params(project, run_id, wdir, definition, locked, side_cache)
    yield from stage_metrics(project, run_id, wdir, definition, locked, top_metrics, side_cache)
    yield from stage_edges(project, node, wdir, definition, locked)


def stage_tags(run_id: str, stage: ExpandedStage, locked: Mapping | None) -> Iterator[Tag]:
    """cmd (redacted), locked flag, and what DVC would call a changed command."""
    cmd = _cmd_text(stage.definition.get("cmd"))
    locked_cmd = _cmd_text(locked.get("cmd")) if locked is not None else None
    if cmd is not None or locked_cmd is not None:
        yield Tag(run_id, "cmd", redact_text(cmd if cmd is not None else locked_cmd or ""))
    yield Tag(run_id, "locked", "true" if locked is not None else "false")
    if not stage.definition:
        yield Tag(run_id, "in_dvc_yaml", "false")
    if cmd is not None and locked_cmd is not None and cmd != locked_cmd:
        yield Tag(run_id, "cmd_changed", "true")
    for key in ("wdir", "desc", "frozen"):
        if key in stage.definition:
            yield Tag(run_id, key, to_text(stage.definition[key]))


def stage_params(
    project: Project, run_id: str, wdir: str, definition: Mapping, locked: Mapping | None, side_cache: dict
) -> Iterator[Param]:
    """Locked param values; for a stage never run, the current values of its declared params."""
    values = locked.get("params") if locked is not None else None
    if not isinstance(values, Mapping):
        values = current_param_values(project, wdir, definition, side_cache)
    for file_name, keys in values.items():
        if not isinstance(keys, Mapping):
            continue
        origin = resolve_path(project, wdir, str(file_name))
        prefix = "" if str(file_name) == DEFAULT_PARAMS else f"{file_name}:"
        for key, value in keys.items():
            yield Param(run_id, f"{prefix}{key}", to_text(value), origin=origin)


def changed_params(
    project: Project, wdir: str, definition: Mapping, locked: Mapping | None, side_cache: dict
) -> list[str]:
    """``file:key`` of every declared param whose current value differs from dvc.lock's (DVC's
    "changed deps" on params: a key added, removed or given another value)."""
    if locked is None or not definition:
        return []
    recorded = locked.get("params") if isinstance(locked.get("params"), Mapping) else {}
    current = current_param_values(project, wdir, definition, side_cache)
    changed: list[str] = []
    for file_name in sorted(set(map(str, recorded)) | set(current)):
        was = dict(flatten(_as_dict(recorded.get(file_name))))
        now = dict(flatten(_as_dict(current.get(file_name))))
        path = resolve_path(project, wdir, file_name)
        changed += [f"{path}:{key}" for key in sorted(set(was) | set(now)) if was.get(key) != now.get(key)]
    return changed


def current_param_values(project: Project, wdir: str, definition: Mapping, side_cache: dict) -> dict:
    """``{file: {key: value}}`` read now from the params files a stage declares."""
    values: dict[str, dict] = {}
    for file_name, keys in declared_params(definition).items():
        path = project.folder / wdir / file_name
        flat = dict(flatten(_as_dict(read_side_file(project, path, side_cache))))
        if keys is None:
            values[file_name] = flat
        else:
            values[file_name] = {k: _dig(flat, k) for k in keys if _dig(flat, k) is not None}
    return values


def declared_params(definition: Mapping) -> dict[str, list[str] | None]:
    """``{params file: keys}`` of a stage (None = every key of the file)."""
    declared: dict[str, list[str] | None] = {}
    for entry in _entries(definition.get("params")):
        if isinstance(entry, str):
            keys = declared.setdefault(DEFAULT_PARAMS, [])
            if keys is not None:
                keys.append(entry)
        elif isinstance(entry, Mapping):
            for file_name, keys in entry.items():
                declared[str(file_name)] = [str(k) for k in keys] if keys else None
    return declared


def stage_metrics(
    project: Project,
    run_id: str,
    wdir: str,
    definition: Mapping,
    locked: Mapping | None,
    top_metrics: list[str],
    side_cache: dict,
) -> Iterator[Metric]:
    """Numeric leaves of the stage's metrics files (its own, and top-level ones it outputs)."""
    files = {resolve_path(project, wdir, p) for p in _out_paths(definition.get("metrics"))}
    outputs = {resolve_path(project, wdir, p) for p in _out_paths(definition.get("outs"))}
    outputs |= {resolve_path(project, wdir, str(o.get("path"))) for o in _lock_items(locked, "outs")}
    files |= {resolve_path(project, ".", p) for p in top_metrics} & outputs
    for rel in sorted(files):
        path = project.ctx.root / rel
        if not path.is_file():
            project.ctx.warn(f"metrics file {rel} declared by {run_id} is missing", project.folder / DVC_YAML)
            continue
        for key, value in flatten(read_side_file(project, path, side_cache)):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                yield Metric(run_id, key, float(value))


def stage_edges(
    project: Project, node: str, wdir: str, definition: Mapping, locked: Mapping | None
) -> Iterator[Edge]:
    """dvc_dep, dvc_out, dvc_params and dvc_cmd_script edges of one stage."""
    evidence = project.lock_rel if locked is not None else project.yaml_rel
    seen: set[tuple[str, str]] = set()
    for item in _lock_items(locked, "deps"):
        yield from _file_edge(project, wdir, item, node, "dvc_dep", evidence, seen)
    for raw in _out_paths(definition.get("deps")):
        yield from _file_edge(project, wdir, {"path": raw}, node, "dvc_dep", project.yaml_rel, seen)
    for item in _lock_items(locked, "outs"):
        yield from _file_edge(project, wdir, item, node, "dvc_out", evidence, seen)
    for section in ("outs", "metrics", "plots"):
        for raw in _out_paths(definition.get(section)):
            yield from _file_edge(project, wdir, {"path": raw}, node, "dvc_out", project.yaml_rel, seen)
    params_files = set((locked or {}).get("params") or {}) | set(declared_params(definition))
    for file_name in sorted(map(str, params_files)):
        yield Edge(resolve_path(project, wdir, file_name), node, "dvc_params", evidence, dst_type="stage")
    cmd = definition.get("cmd") if definition else (locked or {}).get("cmd")
    for script in sorted(scripts_in_cmd(project, wdir, cmd)):
        yield Edge(script, node, "dvc_cmd_script", project.yaml_rel, dst_type="stage")


def _file_edge(
    project: Project, wdir: str, item: Mapping, node: str, relation: str, evidence: str, seen: set
) -> Iterator[Edge]:
    path = resolve_path(project, wdir, str(item.get("path")))
    if (path, relation) in seen:
        return
    seen.add((path, relation))
    facts = {k: item[k] for k in _FACT_KEYS if k in item}
    if "md5" in item and "hash" not in item:
        facts["hash"] = "md5-dos2unix"  # DVC < 3 hashed text files with CRLF normalised
    if evidence == project.yaml_rel:
        facts["locked"] = False
    md5 = str(item["md5"]) if item.get("md5") is not None else None
    if relation == "dvc_dep":
        yield Edge(path, node, relation, evidence, dst_type="stage", md5=md5, facts=facts or None)
    else:
        yield Edge(node, path, relation, evidence, src_type="stage", md5=md5, facts=facts or None)


def scripts_in_cmd(project: Project, wdir: str, cmd: Any) -> set[str]:
    """Root-relative paths of the scripts a command runs (``python src/train.py``, ``-m pkg.mod``)."""
    scripts: set[str] = set()
    for line in _cmd_lines(cmd):
        try:
            tokens = shlex.split(line)
        except ValueError:
            tokens = line.split()
        for index, token in enumerate(tokens):
            if token.endswith(SCRIPT_SUFFIXES) and "${" not in token and not _REMOTE.match(token):
                scripts.add(resolve_path(project, wdir, token))
            elif token == "-m" and index + 1 < len(tokens):
                module = Path(project.folder, wdir, *tokens[index + 1].split("."))
                for candidate in (module.with_suffix(".py"), module / "__main__.py"):
                    if candidate.is_file():
                        scripts.add(project.ctx.relpath(candidate))
                        break
    return scripts


# --- *.dvc files --------------------------------------------------------------------------


def crawl_dvc_file(path: Path, ctx: CrawlContext) -> Iterator[Record]:
    """dvc_tracks edges from a ``.dvc`` file to what it tracks; dvc_import edges for imports."""
    rel = ctx.relpath(path)
    try:
        data = load_yaml(ctx.read_bytes(path))
    except yaml.YAMLError as exc:
        raise ValueError(f"{rel}: not valid YAML: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ValueError(f"{rel}: expected a mapping with 'outs', found {type(data).__name__}")
    folder = path.parent
    tracked: list[str] = []
    for item in _entries(data.get("outs")):
        if not isinstance(item, Mapping) or "path" not in item:
            continue
        target = _resolve(ctx, folder, str(item["path"]))
        tracked.append(target)
        facts = {k: item[k] for k in _FACT_KEYS if k in item}
        if "md5" in item and "hash" not in item:
            facts["hash"] = "md5-dos2unix"
        md5 = str(item["md5"]) if item.get("md5") is not None else None
        yield Edge(rel, target, "dvc_tracks", rel, md5=md5, facts=facts or None)
    for item in _entries(data.get("deps")):
        if isinstance(item, Mapping) and "path" in item:
            yield from import_edges(ctx, folder, rel, item, tracked)


def import_edges(
    ctx: CrawlContext, folder: Path, rel: str, dep: Mapping, tracked: list[str]
) -> Iterator[Edge]:
    """``dvc import``/``import-url`` sources: where the tracked data was copied from."""
    repo = dep.get("repo") if isinstance(dep.get("repo"), Mapping) else None
    raw = str(dep["path"])
    source = (
        f"{repo.get('url')}:{raw}" if repo else (raw if _REMOTE.match(raw) else _resolve(ctx, folder, raw))
    )
    facts = {k: dep[k] for k in _FACT_KEYS if k in dep}
    if repo:
        facts.update({f"repo_{k}": v for k, v in repo.items() if isinstance(v, (str, int))})
    src_type = "url" if repo or _REMOTE.match(raw) else "file"
    for target in tracked:
        yield Edge(
            source, target, "dvc_import", rel, src_type=src_type, md5=dep.get("md5"), facts=facts or None
        )


# --- helpers ------------------------------------------------------------------------------


def read_side_file(project: Project, path: Path, cache: dict) -> Any:
    """A params or metrics file (JSON, YAML, TOML) parsed once per crawl; None when unreadable."""
    key = str(path)
    if key not in cache:
        cache[key] = _parse_side_file(project.ctx, path)
    return cache[key]


def _parse_side_file(ctx: CrawlContext, path: Path) -> Any:
    try:
        if os.stat(path).st_size > MAX_SIDE_FILE:
            ctx.warn(f"{path.name} is larger than {MAX_SIDE_FILE} bytes, not read", path)
            return None
        data = ctx.read_bytes(path)
        suffix = path.suffix.lower()
        if suffix == ".json":
            return load_json(data)
        if suffix == ".toml":
            return tomllib.loads(data.decode("utf-8-sig"))
        return load_yaml(data)
    except FileNotFoundError:
        ctx.warn(f"{path.name} does not exist", path)
    except (OSError, ValueError, UnicodeDecodeError, yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        ctx.warn(f"{path.name} could not be parsed: {exc}", path)
    return None


def resolve_path(project: Project, wdir: str, raw: str) -> str:
    """A path written in dvc.yaml/dvc.lock (relative to the stage's wdir) as a root-relative path."""
    return _resolve(project.ctx, project.folder / wdir, raw)


def _resolve(ctx: CrawlContext, base: Path, raw: str) -> str:
    if _REMOTE.match(raw):
        return raw
    joined = os.path.normpath(os.path.join(base, raw))
    return posixpath.normpath(ctx.relpath(joined))


def _entries(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _out_paths(value: Any) -> list[str]:
    """Paths of a deps/outs/metrics/plots list (entries are strings or ``{path: options}``)."""
    paths: list[str] = []
    for entry in _entries(value):
        if isinstance(entry, str):
            paths.append(entry)
        elif isinstance(entry, Mapping):
            paths.extend(str(k) for k in entry)
    return [p for p in paths if "${" not in p]


def _lock_items(locked: Mapping | None, section: str) -> list[Mapping]:
    if locked is None:
        return []
    return [item for item in _entries(locked.get(section)) if isinstance(item, Mapping) and "path" in item]


def _cmd_lines(cmd: Any) -> list[str]:
    return [str(c) for c in _entries(cmd) if c is not None]


def _cmd_text(cmd: Any) -> str | None:
    lines = _cmd_lines(cmd)
    return "\n".join(lines) if lines else None


def _as_dict(value: Any) -> dict:
    return dict(value) if isinstance(value, Mapping) else {}


def _dig(flat: Mapping, key: str) -> Any:
    """A dotted key from a flattened mapping, or a whole sub-tree when the key names one."""
    if key in flat:
        return flat[key]
    subtree = {k[len(key) + 1 :]: v for k, v in flat.items() if k.startswith(key + ".")}
    return subtree or None
