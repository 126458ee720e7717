"""Weights & Biases local run folders: the ``files/`` JSON/YAML and the ``run-<id>.wandb`` log.

Layout read::

    wandb/
        run-<YYYYMMDD_HHMMSS>-<id>/          online run        } run  wandb:<id>
        offline-run-<YYYYMMDD_HHMMSS>-<id>/  offline run       }
            run-<id>.wandb                   transaction log: every Record the SDK produced
            files/config.yaml                {key: {value: ...}}; ``_wandb`` internals dropped
            files/wandb-summary.json         final summary (online runs, old SDKs)
            files/wandb-metadata.json        git, program, args, host, python, email
            files/requirements.txt, output.log, media/, code/ ...   linked as run artifacts
            logs/debug*.log

Current SDKs write none of ``config.yaml``/``wandb-summary.json``/``wandb-metadata.json`` for
offline runs: the transaction log is then the only record.  Its framing (LevelDB-log style)::

    file header  ":W&B" | uint16 magic 0xBEE1 (LE) | uint8 version          7 bytes
    blocks       32 KiB; a header that would not fit is zero padding up to the next block
    record       uint32 crc32(type byte + data) (LE, zlib CRC-32) | uint16 length (LE) |
                 uint8 type FULL=1 FIRST=2 MIDDLE=3 LAST=4 | data

The payloads are ``wandb_internal_pb2.Record`` protobufs; they are decoded with the ``wandb``
package's own definitions when the optional extra ``mlcrawl[wandb]`` is installed.
"""

from __future__ import annotations

import os
import re
import shlex
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import yaml

from mlcrawl.api import Artifact, BaseCrawler, Claims, CrawlContext, Experiment, FolderShape, Metric, Param
from mlcrawl.api import Record, Run, Tag, flatten, from_epoch_s, load_json, load_yaml, parse_iso, redact_text
from mlcrawl.api import to_float, to_text

RUN_FOLDER = re.compile(r"(?:offline-)?run-\d{8}_\d{6}-(?P<id>[A-Za-z0-9]+)")
EXTRA_HINT = "pip install 'mlcrawl[wandb]'"

LOG_MAGIC = b":W&B"
LOG_HEADER = struct.Struct("<4sHB")
LOG_HEADER_MAGIC = 0xBEE1
BLOCK_SIZE = 32768
FRAGMENT_HEADER = struct.Struct("<IHB")
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
_TYPE_SEEDS = {t: zlib.crc32(bytes([t])) for t in (FULL, FIRST, MIDDLE, LAST)}

INTERNAL_KEYS = frozenset({"_step", "_runtime", "_timestamp"})
_FILE_ROLES = {
    "requirements.txt": "environment",
    "conda-environment.yaml": "environment",
    "wandb-metadata.json": "environment",
    "config.yaml": "config",
    "wandb-summary.json": "output",
    "output.log": "log",
    "diff.patch": "source",
}


class LogFormatError(ValueError):
    """A transaction log whose file header is not W&B's."""


@dataclass
class RunFacts:
    """Everything learned about one run, from the folder's files and from the log."""

    run_id: str
    project: str | None = None
    entity: str | None = None
    display_name: str | None = None
    group: str | None = None
    job_type: str | None = None
    notes: str | None = None
    sweep_id: str | None = None
    labels: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    start_time: datetime | None = None
    last_timestamp: float | None = None
    exit_code: int | None = None
    runtime: float | None = None
    last_history: dict[str, float] = field(default_factory=dict)


# --- transaction-log framing (needs no wandb) ---------------------------------------------------


def check_log_header(buf: bytes) -> int:
    """The log format version; raises LogFormatError when the file is not a W&B log."""
    if len(buf) < LOG_HEADER.size:
        raise LogFormatError(f"shorter than the {LOG_HEADER.size}-byte W&B log header")
    ident, magic, version = LOG_HEADER.unpack_from(buf, 0)
    if ident != LOG_MAGIC or magic != LOG_HEADER_MAGIC:
        raise LogFormatError(f"no W&B log header (found {bytes(buf[:7])!r})")
    return version


def iter_log_records(buf: bytes, ctx: CrawlContext, path: Path) -> Iterator[bytes]:
    """Yield the reassembled record payloads of a transaction log.

    A fragment with a bad checksum or an impossible length makes the rest of its block
    untrustworthy: a warning, then reading resumes at the next block (LevelDB's recovery).  A
    truncated tail is a run still writing: the complete records are yielded, nothing reported.
    """
    check_log_header(buf)
    pos, end = LOG_HEADER.size, len(buf)
    pending: list[bytes] | None = None
    resyncing = False  # after a skipped block, the tail of a broken record is expected
    while pos < end:
        block_left = BLOCK_SIZE - pos % BLOCK_SIZE
        if block_left < FRAGMENT_HEADER.size:
            pos += block_left
            continue
        if end - pos < FRAGMENT_HEADER.size:
            return
        crc, length, kind = FRAGMENT_HEADER.unpack_from(buf, pos)
        if kind == 0 and length == 0:
            pos += block_left  # zero padding to the block's end
            continue
        data_start = pos + FRAGMENT_HEADER.size
        if data_start + length > end and length <= block_left - FRAGMENT_HEADER.size:
            return
        data = buf[data_start:data_start + length]
        if kind not in _TYPE_SEEDS or length > block_left - FRAGMENT_HEADER.size \
                or zlib.crc32(data, _TYPE_SEEDS[kind]) != crc:
            ctx.warn(f"corrupt log fragment at offset {pos}; skipped to the next block", path,
                     "corrupt_record")
            pos, pending, resyncing = pos + block_left, None, True
            continue
        pos = data_start + length
        if resyncing and kind in (MIDDLE, LAST):
            continue
        resyncing = False
        pending = assemble_fragment(kind, data, pending, ctx, path, pos)
        if kind in (FULL, LAST) and pending is not None:
            yield b"".join(pending)
            pending = None


def assemble_fragment(kind: int, data: bytes, pending: list[bytes] | None, ctx: CrawlContext,
                      path: Path, pos: int) -> list[bytes] | None:
    """The fragments of the record being assembled after one more fragment; orphans warned."""
    if kind in (FULL, FIRST):
        if pending is not None:
            ctx.warn(f"unfinished record dropped before offset {pos}", path, "corrupt_record")
        return [data]
    if pending is None:
        ctx.warn(f"fragment without its first part at offset {pos}; dropped", path, "corrupt_record")
        return None
    pending.append(data)
    return pending


# --- decoding records with the optional wandb extra ---------------------------------------------


def load_record_codec() -> tuple[type, type[Exception]] | None:
    """wandb's ``Record`` class and protobuf's decode error; None without ``mlcrawl[wandb]``."""
    try:
        from google.protobuf.message import DecodeError
        from wandb.proto import wandb_internal_pb2
    except ImportError:
        return None
    return wandb_internal_pb2.Record, DecodeError


def read_transaction_log(path: Path, ctx: CrawlContext, codec: tuple[type, type[Exception]],
                         facts: RunFacts) -> Iterator[Metric]:
    """Stream the log's history points as metrics; fold everything else into ``facts``."""
    record_class, decode_error = codec
    with ctx.mapped(path) as buf:
        try:
            records = iter_log_records(buf, ctx, path)
            for payload in records:
                try:
                    record = record_class.FromString(payload)
                except decode_error as exc:
                    ctx.warn(f"undecodable record: {exc}", path, "corrupt_record")
                    continue
                yield from apply_record(record, facts)
        except LogFormatError as exc:
            ctx.warn(f"not a W&B transaction log: {exc}", path, "unreadable_log")


def apply_record(record: Any, facts: RunFacts) -> Iterator[Metric]:
    """Fold one decoded ``Record`` into ``facts``; history rows come out as metric points."""
    kind = record.WhichOneof("record_type")
    if kind == "history":
        yield from history_points(record.history, facts)
    elif kind == "summary":
        apply_updates(facts.summary, record.summary.update, record.summary.remove)
    elif kind == "config":
        apply_updates(facts.config, record.config.update, record.config.remove)
    elif kind == "run":
        apply_run(record.run, facts)
    elif kind == "environment":
        apply_environment(record.environment, facts)
    elif kind == "exit":
        facts.exit_code = record.exit.exit_code
        facts.runtime = float(record.exit.runtime)


def item_key(item: Any) -> str:
    """An update/history item's key: ``key``, or the parts of ``nested_key`` joined by dots."""
    return ".".join(item.nested_key) if item.nested_key else item.key


def decode_json(text: str) -> Any:
    """A ``value_json`` field; undecodable text is kept as the text."""
    try:
        return load_json(text)
    except ValueError:
        return text


def apply_updates(target: dict[str, Any], updates: Any, removes: Any) -> None:
    """Apply a config/summary record's updates and removals to ``target``."""
    for item in updates:
        target[item_key(item)] = decode_json(item.value_json)
    for item in removes:
        target.pop(item_key(item), None)


def apply_run(run: Any, facts: RunFacts) -> None:
    """The ``run`` record: identity, naming, labels, config and start time."""
    for name, value in (("run_id", run.run_id), ("project", run.project), ("entity", run.entity),
                        ("display_name", run.display_name), ("group", run.run_group),
                        ("job_type", run.job_type), ("notes", run.notes),
                        ("sweep_id", run.sweep_id)):
        if value:
            setattr(facts, name, value)
    if run.tags:
        facts.labels = list(run.tags)
    apply_updates(facts.config, run.config.update, run.config.remove)
    if run.HasField("start_time"):
        facts.start_time = from_epoch_s(run.start_time.seconds + run.start_time.nanos / 1e9)
    if run.git.commit:
        facts.metadata.setdefault("git", {})["commit"] = run.git.commit


def apply_environment(env: Any, facts: RunFacts) -> None:
    """The ``environment`` record: the same facts ``wandb-metadata.json`` holds."""
    meta = facts.metadata
    for name in ("os", "python", "program", "code_path", "host", "username", "email"):
        if getattr(env, name):
            meta[name] = getattr(env, name)
    if env.args:
        meta["args"] = list(env.args)
    if env.git.commit or env.git.remote_url:
        meta["git"] = {"commit": env.git.commit or None, "remote": env.git.remote_url or None}
    if env.HasField("started_at"):
        meta["startedAt"] = from_epoch_s(env.started_at.seconds + env.started_at.nanos / 1e9)


def history_points(history: Any, facts: RunFacts) -> Iterator[Metric]:
    """One logged row: every numeric user key becomes a point at the row's ``_step``."""
    row = {item_key(item): decode_json(item.value_json) for item in history.item}
    step = row.get("_step")
    step = step if isinstance(step, int) else (history.step.num if history.HasField("step") else None)
    seconds = to_float(row.get("_timestamp"))
    if seconds is not None:
        facts.last_timestamp = max(seconds, facts.last_timestamp or seconds)
    timestamp = from_epoch_s(seconds)
    run_id = f"wandb:{facts.run_id}"
    for key, value in row.items():
        number = to_float(value) if isinstance(value, (int, float)) else None
        if number is None or is_internal(key):
            continue
        facts.last_history[key] = number
        yield Metric(run_id, key, number, step=step, timestamp=timestamp)


def is_internal(key: str) -> bool:
    """W&B's own bookkeeping keys (``_step``, ``_runtime``, ``_timestamp``, ``_wandb.*``)."""
    return key in INTERNAL_KEYS or key == "_wandb" or key.startswith("_wandb.")


# --- the folder's plain files -------------------------------------------------------------------


def read_config_yaml(path: Path, ctx: CrawlContext) -> dict[str, Any]:
    """``files/config.yaml``: ``{key: {value: v}}`` unwrapped; ``_wandb`` and version dropped."""
    try:
        data = load_yaml(ctx.read_text(path))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        ctx.warn(f"config.yaml is not YAML: {exc}", path, "bad_config")
        return {}
    if not isinstance(data, dict):
        ctx.warn("config.yaml holds no mapping", path, "bad_config")
        return {}
    return {str(key): entry["value"] for key, entry in data.items()
            if isinstance(entry, dict) and "value" in entry and key != "_wandb"}


def read_json_file(path: Path, ctx: CrawlContext) -> dict[str, Any]:
    """A JSON object file of the run folder; a warning and ``{}`` when it is not one."""
    try:
        data = load_json(ctx.read_text(path))
    except (ValueError, UnicodeDecodeError) as exc:
        ctx.warn(f"{path.name} is not JSON: {exc}", path, "bad_json")
        return {}
    if not isinstance(data, dict):
        ctx.warn(f"{path.name} holds no JSON object", path, "bad_json")
        return {}
    return data


def read_folder_files(unit: Path, ctx: CrawlContext, facts: RunFacts) -> None:
    """Fold ``files/config.yaml``, ``wandb-summary.json`` and ``wandb-metadata.json`` in.

    These are the final state the SDK wrote at the end, so they win over the log.
    """
    files = unit / "files"
    if (files / "config.yaml").is_file():
        facts.config.update(read_config_yaml(files / "config.yaml", ctx))
    if (files / "wandb-summary.json").is_file():
        facts.summary.update(read_json_file(files / "wandb-summary.json", ctx))
    if (files / "wandb-metadata.json").is_file():
        facts.metadata.update(read_json_file(files / "wandb-metadata.json", ctx))


def list_artifacts(unit: Path, ctx: CrawlContext, run_id: str) -> Iterator[Artifact]:
    """The files the run saved under ``files/``, and its transaction log."""
    for log in sorted(unit.glob("*.wandb")):
        yield Artifact(run_id, ctx.relpath(log), "log")
    files = unit / "files"
    for folder, dirs, names in os.walk(files):
        dirs.sort()
        for name in sorted(names):
            path = Path(folder) / name
            top = path.relative_to(files).parts[0]
            role = _FILE_ROLES.get(name) or ("source" if top == "code" else "artifact")
            yield Artifact(run_id, ctx.relpath(path), role)


# --- records ------------------------------------------------------------------------------------


class WandbCrawler(BaseCrawler):
    """One run per W&B run folder (``wandb/run-*``, ``wandb/offline-run-*``)."""

    name: ClassVar[str] = "wandb"
    claims = Claims(folders=(FolderShape(name="*run-*", any_of=("files", "*.wandb")),))
    version: ClassVar[int] = 1

    def match(self, path: Path, is_dir: bool) -> bool:
        """Folders are claimed by ``match_folder``, which sees their entries."""
        return False

    def match_folder(self, path: Path, names: frozenset[str]) -> bool:
        """A folder named like a W&B run that holds ``files/`` or a ``.wandb`` log."""
        return bool(RUN_FOLDER.fullmatch(path.name)) and (
            "files" in names or any(name.endswith(".wandb") for name in names))

    def folder_run_id(self, folder: Path, rel: str) -> str | None:
        """A run folder is named after its run id: ``wandb:<id>``."""
        match = RUN_FOLDER.fullmatch(folder.name)
        return f"wandb:{match['id']}" if match else None

    def crawl(self, unit: Path, ctx: CrawlContext) -> Iterator[Record]:
        """History streams from the log first; the run and its facts follow."""
        facts = RunFacts(run_id=folder_run_id(unit))
        yield from read_logs(unit, ctx, facts)
        read_folder_files(unit, ctx, facts)
        run_id = f"wandb:{facts.run_id}"
        yield build_run(unit, ctx, facts)
        if facts.project:
            yield Experiment(experiment_id=f"wandb:{facts.project}", source="wandb", name=facts.project)
        yield from config_params(facts, run_id)
        yield from summary_metrics(facts, run_id)
        yield from run_tags(facts, run_id)
        yield from list_artifacts(unit, ctx, run_id)


def folder_run_id(unit: Path) -> str:
    """The run id the folder name ends with (the log's run record may correct it)."""
    match = RUN_FOLDER.fullmatch(unit.name)
    return match["id"] if match else unit.name


def read_logs(unit: Path, ctx: CrawlContext, facts: RunFacts) -> Iterator[Metric]:
    """The history in the folder's transaction log(s), or a hint when the extra is missing."""
    logs = [p for p in sorted(unit.glob("*.wandb")) if p.is_file() and p.stat().st_size]
    if not logs:
        return
    codec = load_record_codec()
    if codec is None:
        ctx.warn(f"the W&B transaction log holds this run's config, summary and history; "
                 f"install the extra to read it: {EXTRA_HINT}", logs[0], "missing_extra")
        return
    for log in logs:
        yield from read_transaction_log(log, ctx, codec, facts)


def build_run(unit: Path, ctx: CrawlContext, facts: RunFacts) -> Run:
    """The run row: identity, naming, times and status."""
    meta = facts.metadata
    start = facts.start_time or as_datetime(meta.get("startedAt"))
    git = meta.get("git") if isinstance(meta.get("git"), dict) else {}
    return Run(
        run_id=f"wandb:{facts.run_id}",
        source="wandb",
        source_run_id=facts.run_id,
        experiment=facts.project,
        name=facts.display_name,
        status=exit_status(facts.exit_code),
        start_time=start,
        end_time=end_time(start, facts),
        user=meta.get("username") or None,
        git_commit=git.get("commit") or None,
        dir=ctx.relpath(unit),
        group=facts.group,
    )


def as_datetime(value: Any) -> datetime | None:
    """A metadata time (ISO text from the JSON file, datetime from the log)."""
    return value if isinstance(value, datetime) else parse_iso(value)


def exit_status(exit_code: int | None) -> str | None:
    """FINISHED for exit code 0, FAILED otherwise; None when no exit was logged (running or lost)."""
    if exit_code is None:
        return None
    return "FINISHED" if exit_code == 0 else "FAILED"


def end_time(start: datetime | None, facts: RunFacts) -> datetime | None:
    """The later of start + runtime and the last logged timestamp, once the run has exited."""
    if facts.exit_code is None:
        return None
    candidates = [from_epoch_s(facts.last_timestamp)]
    if start is not None and facts.runtime is not None:
        candidates.append(start + timedelta(seconds=facts.runtime))
    known = [c for c in candidates if c is not None]
    return max(known) if known else None


def config_params(facts: RunFacts, run_id: str) -> Iterator[Param]:
    """The config as dotted params (``_wandb`` internals dropped)."""
    config = {k: v for k, v in facts.config.items() if k != "_wandb" and not k.startswith("_wandb.")}
    for key, value in flatten(config):
        yield Param(run_id, key, to_text(value), origin="config")


def summary_metrics(facts: RunFacts, run_id: str) -> Iterator[Record]:
    """Summary values the history does not already end with: numbers as step-less metrics,
    text as tags (media and table references are skipped)."""
    plain = {k: v for k, v in facts.summary.items() if not is_internal(k) and not is_media(v)}
    for key, value in flatten(plain):
        if is_internal(key) or isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            if facts.last_history.get(key) != float(value):
                yield Metric(run_id, key, float(value))
        elif isinstance(value, str):
            yield Tag(run_id, f"wandb.summary.{key}", value)


def is_media(value: Any) -> bool:
    """A summary entry that points at logged media or a table (``{"_type": ...}``)."""
    return isinstance(value, dict) and "_type" in value


def run_tags(facts: RunFacts, run_id: str) -> Iterator[Tag]:
    """W&B labels (one tag each, no value) and the run's descriptive facts as ``wandb.*`` tags."""
    for label in facts.labels:
        yield Tag(run_id, label, None)
    meta = facts.metadata
    args = meta.get("args")
    git = meta.get("git") if isinstance(meta.get("git"), dict) else {}
    described = {
        "wandb.entity": facts.entity,
        "wandb.job_type": facts.job_type,
        "wandb.notes": facts.notes,
        "wandb.sweep_id": facts.sweep_id,
        "wandb.exit_code": None if facts.exit_code is None else str(facts.exit_code),
        "wandb.program": meta.get("program"),
        "wandb.code_path": meta.get("codePath") or meta.get("code_path"),
        "wandb.args": redact_text(shlex.join(map(str, args))) if isinstance(args, list) and args else None,
        "wandb.host": meta.get("host"),
        "wandb.python": meta.get("python"),
        "wandb.os": meta.get("os"),
        "wandb.email": redact_text(meta["email"]) if meta.get("email") else None,
        "wandb.git.remote": git.get("remote") or None,
    }
    for key, value in described.items():
        if value:
            yield Tag(run_id, key, str(value))
