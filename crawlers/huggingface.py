"""Crawls Hugging Face ``Trainer`` output folders into one run each, checkpoints included.

    <output_dir>/                       one unit = one run ``hf_trainer:<rel dir>``
      trainer_state.json                global_step, epoch, best_*, log_history [{step, epoch, loss...}]
      all_results.json                  final metrics (also train_/eval_/test_/predict_results.json)
      config.json                       model architecture and sizes        -> params model.*
      adapter_config.json               PEFT adapter settings (optional)    -> params adapter.*
      model.safetensors | pytorch_model.bin | *-0000n-of-0000m.*             -> artifacts (model)
      training_args.bin                 a pickle: listed, never loaded      -> artifact (opaque_pickle)
      checkpoint-<n>/                   not a unit of its own: artifacts (checkpoint) of the run
        trainer_state.json  model.safetensors  optimizer.pt  scheduler.pt  rng_state.pth ...

A folder that only holds ``checkpoint-<n>/`` folders (training stopped before the final save)
is still a run: its state is read from the latest checkpoint's trainer_state.json.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from mlcrawl.api import Artifact, BaseCrawler, Claims, CrawlContext, Edge, FolderShape, Metric, Param, Record
from mlcrawl.api import Run, Tag, flatten, load_json, to_float, to_text

STATE = "trainer_state.json"
RESULTS = ("all_results.json", "train_results.json")
CHECKPOINT = re.compile(r"checkpoint-(\d+)")
MAX_JSON = 256 << 20  # a trainer_state.json beyond this is not read (bounded memory)
MAX_CHECKPOINT_FILES = 10_000
#: Settings of the training loop kept as params ``trainer.<key>``.
TRAINER_SETTINGS = (
    "max_steps",
    "num_train_epochs",
    "logging_steps",
    "eval_steps",
    "save_steps",
    "train_batch_size",
    "is_hyper_param_search",
    "trial_name",
)
#: State reached by the run, kept as tags.
STATE_TAGS = (
    "global_step",
    "epoch",
    "best_metric",
    "best_model_checkpoint",
    "best_global_step",
    "total_flos",
)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".joblib")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".h5", ".msgpack", ".gguf", ".onnx", ".pt", ".pth")
# Files that describe rather than hold state; everything else in an output folder is a
# checkpoint file (weights, optimizer, scheduler, RNG, training args, tokenizer models).
METADATA_SUFFIXES = (".json", ".txt", ".md", ".yaml", ".yml", ".jinja", ".py", ".log")
LABEL_MAPS = ("id2label", "label2id")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One ``checkpoint-<n>`` folder and what its own trainer_state.json says."""

    folder: Path
    step: int
    state: dict | None


class HuggingfaceCrawler(BaseCrawler):
    """Reads Trainer output folders: state, log history, results, config and checkpoints."""

    name: ClassVar[str] = "huggingface"
    claims = Claims(folders=(FolderShape(any_of=(STATE, *RESULTS, "checkpoint-*")),))
    version: ClassVar[int] = 1

    def match(self, path: Path, is_dir: bool) -> bool:
        """Trainer folders are claimed by ``match_folder`` only."""
        return False

    def match_folder(self, path: Path, names: frozenset[str]) -> bool:
        """Claim a Trainer output folder; a ``checkpoint-<n>`` folder belongs to its parent's run."""
        if CHECKPOINT.fullmatch(path.name):
            return False
        return (
            STATE in names or any(r in names for r in RESULTS) or any(CHECKPOINT.fullmatch(n) for n in names)
        )

    def folder_run_id(self, folder: Path, rel: str) -> str | None:
        """A Trainer output folder is one run: ``hf_trainer:<rel folder>``."""
        return f"hf_trainer:{rel}"

    def crawl(self, unit: Path, ctx: CrawlContext) -> Iterator[Record]:
        """Yield the run of one Trainer output folder with its metrics, params and artifacts."""
        checkpoints = read_checkpoints(unit, ctx)
        state = read_state(unit / STATE, ctx) if (unit / STATE).is_file() else None
        if state is None and checkpoints and checkpoints[-1].state is not None:
            state = checkpoints[-1].state
        results = read_results(unit, ctx)
        if state is None and not results and not any(c.state for c in checkpoints):
            return  # checkpoint-<n> folders of some other tool: not a Trainer run
        run_id = f"hf_trainer:{ctx.relpath(unit)}"
        yield make_run(run_id, unit, ctx, state or {}, results)
        yield from state_tags(run_id, state or {})
        yield from state_params(run_id, state or {})
        yield from config_params(run_id, unit, ctx)
        yield from history_metrics(run_id, state or {})
        yield from result_metrics(run_id, state or {}, results)
        yield from folder_artifacts(run_id, unit, ctx)
        for checkpoint in checkpoints:
            yield from checkpoint_artifacts(run_id, checkpoint, ctx)


def read_state(path: Path, ctx: CrawlContext) -> dict | None:
    """trainer_state.json as a mapping; warn and return None when it cannot be read."""
    parsed = _read_json(path, ctx)
    if parsed is not None and not isinstance(parsed, Mapping):
        ctx.warn(f"{path.name} is not a JSON object, its state is ignored", path)
        return None
    return dict(parsed) if parsed is not None else None


def read_results(unit: Path, ctx: CrawlContext) -> dict[str, dict]:
    """``{file name: metrics}`` of the ``*_results.json`` files, all_results.json first."""
    names = sorted(
        (e.name for e in os.scandir(unit) if e.is_file() and e.name.endswith("_results.json")),
        key=lambda n: (n != "all_results.json", n),
    )
    results: dict[str, dict] = {}
    for name in names:
        parsed = _read_json(unit / name, ctx)
        if isinstance(parsed, Mapping):
            results[name] = dict(parsed)
    return results


def read_checkpoints(unit: Path, ctx: CrawlContext) -> list[Checkpoint]:
    """The ``checkpoint-<n>`` folders of a run, by step, each with its trainer state."""
    found = []
    for entry in os.scandir(unit):
        match = CHECKPOINT.fullmatch(entry.name)
        if match and entry.is_dir():
            state_path = Path(entry.path) / STATE
            state = read_state(state_path, ctx) if state_path.is_file() else None
            found.append(Checkpoint(Path(entry.path), int(match[1]), state))
    return sorted(found, key=lambda c: c.step)


def make_run(run_id: str, unit: Path, ctx: CrawlContext, state: Mapping, results: Mapping) -> Run:
    """The run; FINISHED when the Trainer wrote its final results or reached max_steps."""
    global_step, max_steps = state.get("global_step"), state.get("max_steps")
    reached = isinstance(global_step, int) and isinstance(max_steps, int) and 0 < max_steps <= global_step
    finished = reached or any(name in results for name in RESULTS)
    rel = ctx.relpath(unit)
    return Run(
        run_id=run_id,
        source="hf_trainer",
        source_run_id=rel,
        name=unit.name,
        status="FINISHED" if finished else None,
        dir=rel,
    )


def state_tags(run_id: str, state: Mapping) -> Iterator[Tag]:
    """Where training ended and its best checkpoint, as tags (absent keys are skipped)."""
    for key in STATE_TAGS:
        if state.get(key) is not None:
            yield Tag(run_id, key, to_text(state[key]))
    history = state.get("log_history")
    if isinstance(history, list):
        yield Tag(run_id, "log_history_len", str(len(history)))


def state_params(run_id: str, state: Mapping) -> Iterator[Param]:
    """Training-loop settings (``trainer.*``) and hyperparameter-search trial params."""
    for key in TRAINER_SETTINGS:
        if state.get(key) is not None:
            yield Param(run_id, f"trainer.{key}", to_text(state[key]), origin=STATE)
    trial = state.get("trial_params")
    if isinstance(trial, Mapping):
        for key, value in flatten(trial):
            yield Param(run_id, key, to_text(value), origin="trial_params")


def config_params(run_id: str, unit: Path, ctx: CrawlContext) -> Iterator[Param]:
    """config.json as ``model.*`` params (label maps reduced to ``model.num_labels``), PEFT's
    adapter_config.json as ``adapter.*``."""
    for file_name, prefix in (("config.json", "model"), ("adapter_config.json", "adapter")):
        path = unit / file_name
        config = _read_json(path, ctx) if path.is_file() else None
        if not isinstance(config, Mapping):
            continue
        labels = config.get("id2label")
        if isinstance(labels, Mapping) and "num_labels" not in config:
            yield Param(run_id, f"{prefix}.num_labels", str(len(labels)), origin=file_name)
        for key, value in flatten({k: v for k, v in config.items() if k not in LABEL_MAPS}):
            yield Param(run_id, f"{prefix}.{key}", to_text(value), origin=file_name)


def history_metrics(run_id: str, state: Mapping) -> Iterator[Metric]:
    """Every point of ``log_history``; the fractional epoch is also kept as metric ``epoch``."""
    history = state.get("log_history")
    if not isinstance(history, list):
        return
    epoch_steps: set[int | None] = set()
    for entry in history:
        if not isinstance(entry, Mapping):
            continue
        step = _as_int(entry.get("step"))
        epoch = to_float(entry.get("epoch"))
        whole_epoch = math.floor(epoch) if epoch is not None and math.isfinite(epoch) else None
        if epoch is not None and step not in epoch_steps:
            epoch_steps.add(step)
            yield Metric(run_id, "epoch", epoch, step=step, epoch=whole_epoch)
        for key, value in entry.items():
            number = to_float(value) if not isinstance(value, str) else None
            if key not in ("step", "epoch") and number is not None:
                yield Metric(run_id, str(key), number, step=step, epoch=whole_epoch)


def result_metrics(run_id: str, state: Mapping, results: Mapping[str, dict]) -> Iterator[Metric]:
    """Final metrics of ``*_results.json`` at the final global step, unless log_history already
    holds the same value there (the Trainer logs its final train/eval summaries in both)."""
    step = _as_int(state.get("global_step"))
    history = state.get("log_history") if isinstance(state.get("log_history"), list) else []
    seen = {
        (str(k), _as_int(e.get("step")), to_float(v))
        for e in history
        if isinstance(e, Mapping)
        for k, v in e.items()
        if not isinstance(v, str)
    }
    for metrics in results.values():
        for key, value in flatten(metrics):
            number = to_float(value) if not isinstance(value, str) else None
            if number is not None and (key, step, number) not in seen:
                seen.add((key, step, number))
                yield Metric(run_id, key, number, step=step)


def folder_artifacts(run_id: str, unit: Path, ctx: CrawlContext) -> Iterator[Record]:
    """The files of the output folder itself: final model, training args, configs, results."""
    for entry in sorted(os.scandir(unit), key=lambda e: e.name):
        if entry.is_file():
            path = Path(entry.path)
            yield Artifact(run_id, ctx.relpath(path), _file_role(path), _file_facts(path))
            if _is_state_file(path):
                yield Edge(run_id, ctx.relpath(path), "hf_checkpoint_file", ctx.relpath(unit), src_type="run")


def checkpoint_artifacts(run_id: str, checkpoint: Checkpoint, ctx: CrawlContext) -> Iterator[Record]:
    """A checkpoint folder (with its step, epoch and best metric) and every file in it."""
    name = checkpoint.folder.name
    state = checkpoint.state or {}
    facts = {"step": checkpoint.step, **{k: state[k] for k in STATE_TAGS if k in state}}
    if isinstance(state.get("log_history"), list):
        facts["log_history_len"] = len(state["log_history"])
    yield Artifact(run_id, ctx.relpath(checkpoint.folder), "checkpoint", facts)
    for path in _files_under(checkpoint.folder, ctx):
        rel = ctx.relpath(path)
        yield Artifact(run_id, rel, "checkpoint", {"checkpoint": name, **(_file_facts(path) or {})})
        if _is_state_file(path):
            yield Edge(
                run_id,
                rel,
                "hf_checkpoint_file",
                ctx.relpath(checkpoint.folder),
                src_type="run",
                facts={"checkpoint": name, "step": checkpoint.step},
            )


def _files_under(folder: Path, ctx: CrawlContext) -> list[Path]:
    """Files of a checkpoint folder, nested ones included (DeepSpeed ``global_step*/``), bounded."""
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        files.extend(Path(dirpath, f) for f in sorted(filenames))
        if len(files) > MAX_CHECKPOINT_FILES:
            ctx.warn(f"more than {MAX_CHECKPOINT_FILES} files, the rest are not listed", folder)
            return files[:MAX_CHECKPOINT_FILES]
    return files


def _file_role(path: Path) -> str:
    if path.name == "training_args.bin" or path.name.endswith("config.json"):
        return "config"
    if path.suffix in WEIGHT_SUFFIXES:
        return "model"
    if path.name == STATE or path.name.endswith("_results.json"):
        return "output"
    return "artifact"


def _file_facts(path: Path) -> dict | None:
    # torch.save writes pickles: loading one can execute code, so they stay opaque.
    return {"opaque_pickle": True} if path.suffix in PICKLE_SUFFIXES else None


def _is_state_file(path: Path) -> bool:
    return path.suffix not in METADATA_SUFFIXES


def _read_json(path: Path, ctx: CrawlContext) -> Any:
    """A JSON file, or None with a warning when it is too large or not JSON."""
    try:
        if path.stat().st_size > MAX_JSON:
            ctx.warn(f"{path.name} is larger than {MAX_JSON} bytes, not read", path)
            return None
        return load_json(ctx.read_bytes(path))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        ctx.warn(f"{path.name} is not readable JSON: {exc}", path)
        return None


def _as_int(value: Any) -> int | None:
    number = to_float(value)
    return int(number) if number is not None and math.isfinite(number) else None
