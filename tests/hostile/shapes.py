"""Minimal folder shapes of every tool a built-in crawler reads, with the files each one reads.

A shape is built from three inputs so that one builder serves every hostile case:

* ``text`` and ``num`` are the values planted in every document (a param value, a metric, a
  tag, a column name).  The normal tree uses harmless ones; the copy a symlink points to outside
  the root uses the marker values, so a crawler that follows the symlink would put the marker
  into the catalog.
* ``name`` is the user-chosen part of the shape (a param name, a run folder, a file stem): the
  names cases put non-UTF-8 bytes, newlines and control characters there.

Each shape lists the files (and folders) its crawler reads, by path inside the shape: those are
the places the hostile matrix replaces with a FIFO, a device, a symlink out of the root...
"""

from __future__ import annotations

import io
import json
import pickle
import sqlite3
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mlcrawl.crawlers._formats.tfevents import masked_crc32c

#: Values that, found anywhere in a catalog, prove a read went outside the root.
MARKER_TEXT = "OUTSIDEMARKER5f0c1e"
MARKER_NUM = 98765.4321


@dataclass(frozen=True)
class Shape:
    """One tool's folder: its files, and the files and folders its crawler reads."""

    files: dict[str, bytes]
    targets: tuple[str, ...]
    folder_targets: tuple[str, ...] = field(default=())


# --- binary formats, built the way their writers lay them out -----------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def tfrecord(data: bytes) -> bytes:
    """One TFRecord frame: length, masked CRC of the length, data, masked CRC of the data."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc32c(length)) + data + struct.pack("<I", masked_crc32c(data))


def tfevents(tag: str, value: float) -> bytes:
    """An event file with the version record and one simple-value scalar at step 1."""
    version = _varint(1 << 3 | 1) + struct.pack("<d", 1.7e9) + _field(3, b"brain.Event:2")
    scalar = _field(1, tag.encode()) + _varint(2 << 3 | 5) + struct.pack("<f", value)
    event = _varint(1 << 3 | 1) + struct.pack("<d", 1.7e9) + _varint(2 << 3) + _varint(1) + _field(5, _field(1, scalar))
    return tfrecord(version) + tfrecord(event)


def safetensors(text: str) -> bytes:
    header = json.dumps({"__metadata__": {"note": text}, "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})
    raw = header.encode()
    return struct.pack("<Q", len(raw)) + raw + b"\0" * 8


def onnx(text: str) -> bytes:
    """A ModelProto: ir_version, producer_name, and a graph with one named input."""
    value_info = _field(1, b"x")
    graph = _field(2, text.encode()) + _field(11, value_info)
    return _varint(1 << 3) + _varint(8) + _field(2, text.encode()) + _field(7, graph)


def torch_zip(text: str, num: float, archive: str = "archive") -> bytes:
    """A zip checkpoint in torch's layout; data.pkl is pickled plain data (never unpickled by mlcrawl)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{archive}/data.pkl", pickle.dumps({"note": text, "lr": num, "epoch": 1}, protocol=2))
        zf.writestr(f"{archive}/version", "3\n")
    return buf.getvalue()


def keras_zip(text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.0.0", "date_saved": "2024-01-01"}))
        zf.writestr("config.json", json.dumps({"class_name": "Sequential", "config": {"name": text}}))
    return buf.getvalue()


def parquet(text: str, num: float) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table({text: [num, 2.0], "b": ["x", "y"]}), buf)
    return buf.getvalue()


def sqlite_store(text: str, num: float, path: Path) -> bytes:
    """An SQLite file with MLflow's core tables and one run (enough for the store's schema check)."""
    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE experiments (experiment_id INTEGER PRIMARY KEY, name TEXT, artifact_location TEXT,
            lifecycle_stage TEXT, creation_time BIGINT, last_update_time BIGINT);
        CREATE TABLE runs (run_uuid TEXT PRIMARY KEY, name TEXT, source_type TEXT, source_name TEXT,
            entry_point_name TEXT, user_id TEXT, status TEXT, start_time BIGINT, end_time BIGINT,
            source_version TEXT, lifecycle_stage TEXT, artifact_uri TEXT, experiment_id INTEGER, deleted_time BIGINT);
        CREATE TABLE params (key TEXT, value TEXT, run_uuid TEXT);
        CREATE TABLE tags (key TEXT, value TEXT, run_uuid TEXT);
        CREATE TABLE metrics (key TEXT, value FLOAT, timestamp BIGINT, run_uuid TEXT, step BIGINT, is_nan BOOLEAN);
        CREATE TABLE latest_metrics (key TEXT, value FLOAT, timestamp BIGINT, step BIGINT, is_nan BOOLEAN, run_uuid TEXT);
        CREATE TABLE alembic_version (version_num TEXT);
    """)
    con.execute("INSERT INTO experiments VALUES (0, ?, 'mlartifacts/0', 'active', 1, 1)", [text])
    con.execute("INSERT INTO runs VALUES ('r1', ?, 'LOCAL', 'train.py', 'main', 'u', 'FINISHED', 1700000000000,"
                " 1700000001000, NULL, 'active', 'mlartifacts/0/r1', 0, NULL)", [text])
    con.execute("INSERT INTO params VALUES ('lr', ?, 'r1')", [text])
    con.execute("INSERT INTO metrics VALUES ('loss', ?, 1700000000000, 'r1', 0, 0)", [num])
    con.commit()
    con.close()
    data = path.read_bytes()
    path.unlink()
    return data


def notebook(text: str) -> bytes:
    return json.dumps({
        "nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                        "language": "python"}},
        "cells": [{"cell_type": "code", "id": "c1", "metadata": {}, "execution_count": 1, "outputs": [],
                   "source": f"import os\nopen('data/{text}.csv')\n"}],
    }).encode()


# --- the shapes ---------------------------------------------------------------------------------

ShapeBuilder = Callable[[str, float, str, Path], Shape]


def mlflow(text: str, num: float, name: str, scratch: Path) -> Shape:
    run = f"mlruns/0/{name}run"
    files = {
        "mlruns/0/meta.yaml": f"artifact_location: mlruns/0\nexperiment_id: '0'\nlifecycle_stage: active\nname: {text}\n",
        f"{run}/meta.yaml": (f"artifact_uri: artifacts\nend_time: 1700000001000\nexperiment_id: '0'\n"
                             f"lifecycle_stage: active\nrun_id: r{len(name)}\nrun_name: {text}\nsource_type: 4\n"
                             f"start_time: 1700000000000\nstatus: 3\nuser_id: {text}\n"),
        f"{run}/params/{name}lr": text,
        f"{run}/metrics/{name}loss": f"1700000000000 {num} 0\n",
        f"{run}/tags/mlflow.note.{name}": text,
        f"{run}/artifacts/model/MLmodel": f"artifact_path: model\nflavors:\n  python_function:\n    loader_module: {text}\n",
    }
    targets = ("mlruns/0/meta.yaml", f"{run}/meta.yaml", f"{run}/params/{name}lr", f"{run}/metrics/{name}loss",
               f"{run}/tags/mlflow.note.{name}", f"{run}/artifacts/model/MLmodel")
    return Shape(_encode(files), targets, (f"{run}/params", f"{run}/tags", f"{run}/metrics"))


def sacred(text: str, num: float, name: str, scratch: Path) -> Shape:
    run = f"runs/{name}1"
    files = {
        f"{run}/run.json": json.dumps({"status": "COMPLETED", "experiment": {"name": text, "base_dir": "/x"},
                                       "start_time": "2024-01-01T00:00:00.000000", "host": {"hostname": text},
                                       "command": "main", "meta": {}, "artifacts": [], "resources": []}),
        f"{run}/config.json": json.dumps({"lr": num, "name": text, "seed": 1}),
        f"{run}/metrics.json": json.dumps({"loss": {"steps": [0], "values": [num],
                                                    "timestamps": ["2024-01-01T00:00:00.000000"]}}),
        f"{run}/info.json": json.dumps({"note": text}),
        f"{run}/cout.txt": text,
    }
    return Shape(_encode(files), tuple(f"{run}/{n}" for n in ("run.json", "config.json", "metrics.json", "info.json",
                                                              "cout.txt")), (run,))


def hydra(text: str, num: float, name: str, scratch: Path) -> Shape:
    run = f"outputs/2024-01-01/{name}12-00-00"
    sweep = f"multirun/2024-01-01/{name}12-00-00"
    files = {
        f"{run}/.hydra/config.yaml": f"lr: {num}\nname: {text}\n",
        f"{run}/.hydra/hydra.yaml": f"hydra:\n  job:\n    name: {text}\n  runtime:\n    cwd: /x\n",
        f"{run}/.hydra/overrides.yaml": f"- lr={num}\n- name={text}\n",
        f"{run}/main.log": text,
        f"{sweep}/multirun.yaml": f"hydra:\n  mode: MULTIRUN\n  job:\n    name: {text}\n",
        f"{sweep}/0/.hydra/config.yaml": f"lr: {num}\n",
        f"{sweep}/0/.hydra/overrides.yaml": f"- lr={num}\n",
    }
    targets = (f"{run}/.hydra/config.yaml", f"{run}/.hydra/hydra.yaml", f"{run}/.hydra/overrides.yaml",
               f"{sweep}/multirun.yaml", f"{sweep}/0/.hydra/config.yaml")
    return Shape(_encode(files), targets, (f"{run}/.hydra",))


def dvc(text: str, num: float, name: str, scratch: Path) -> Shape:
    md5 = "0" * 32
    files = {
        "proj/dvc.yaml": (f"stages:\n  train:\n    cmd: python train.py {text}\n    deps: [data.csv]\n"
                          f"    params: [lr]\n    outs: [model.pkl]\n    metrics:\n    - metrics.json:\n        cache: false\n"),
        "proj/dvc.lock": (f"schema: '2.0'\nstages:\n  train:\n    cmd: python train.py {text}\n    deps:\n"
                          f"    - path: data.csv\n      md5: {md5}\n      size: 3\n    params:\n      params.yaml:\n"
                          f"        lr: {num}\n    outs:\n    - path: model.pkl\n      md5: {md5}\n      size: 3\n"),
        "proj/params.yaml": f"lr: {num}\nname: {text}\n",
        "proj/metrics.json": json.dumps({"acc": num, "note": text}),
        "proj/data.csv": "a\n1\n",
        f"proj/{name}raw.csv.dvc": f"outs:\n- md5: {md5}\n  size: 3\n  path: raw.csv\n  desc: {text}\n",
    }
    targets = ("proj/dvc.yaml", "proj/dvc.lock", "proj/params.yaml", "proj/metrics.json", f"proj/{name}raw.csv.dvc")
    return Shape(_encode(files), targets)


def lightning(text: str, num: float, name: str, scratch: Path) -> Shape:
    run = f"lightning_logs/version_{name}0"
    files = {
        f"{run}/hparams.yaml": f"lr: {num}\nname: {text}\n",
        f"{run}/metrics.csv": f"epoch,step,{text}\n0,0,{num}\n",
        f"{run}/checkpoints/epoch=0-step={name}1.ckpt": torch_zip(text, num, "epoch=0-step=1"),
    }
    return Shape(_encode(files), tuple(files), (f"{run}/checkpoints",))


def huggingface(text: str, num: float, name: str, scratch: Path) -> Shape:
    out = f"hf/{name}out"
    state = json.dumps({"global_step": 1, "epoch": 1.0, "best_model_checkpoint": text,
                        "log_history": [{"loss": num, "step": 1, "epoch": 1.0}]})
    config = json.dumps({"model_type": "bert", "architectures": [text], "hidden_size": 8})
    files = {
        f"{out}/trainer_state.json": state,
        f"{out}/config.json": config,
        f"{out}/all_results.json": json.dumps({"train_loss": num, "note": text}),
        f"{out}/checkpoint-1/trainer_state.json": state,
        f"{out}/checkpoint-1/config.json": config,
    }
    return Shape(_encode(files), tuple(files), (f"{out}/checkpoint-1",))


def wandb(text: str, num: float, name: str, scratch: Path) -> Shape:
    run = f"wandb/run-20240101_000000-{name}abc"
    files = {
        f"{run}/files/config.yaml": f"lr:\n  value: {num}\nname:\n  value: {text}\n",
        f"{run}/files/wandb-summary.json": json.dumps({"loss": num, "note": text}),
        f"{run}/files/wandb-metadata.json": json.dumps({"program": text, "host": "h", "startedAt": "2024-01-01T00:00:00"}),
        f"{run}/files/requirements.txt": f"numpy==1.26.0\n{text}==1.0\n",
        f"{run}/run-{name}abc.wandb": b"",
    }
    return Shape(_encode(files), tuple(files), (f"{run}/files",))


def tensorboard(text: str, num: float, name: str, scratch: Path) -> Shape:
    files = {f"tb/{name}run/events.out.tfevents.1700000000.host.1.0": tfevents(text, num)}
    return Shape(files, tuple(files))


def files_alone(text: str, num: float, name: str, scratch: Path) -> Shape:
    """The file-claim crawlers: notebooks, code, datasets, models, environment, generic, MLflow SQLite."""
    files = {
        f"nb/{name}analysis.ipynb": notebook(text),
        f"code/{name}train.py": f"import numpy\nx = {text!r}\nopen('data.csv').read()\n",
        f"data/{name}table.csv": f"a,{text}\n1,{num}\n",
        f"data/{name}table.parquet": parquet(text, num),
        f"data/{name}rows.jsonl": json.dumps({"a": num, "b": text}) + "\n",
        f"models/{name}w.safetensors": safetensors(text),
        f"models/{name}m.onnx": onnx(text),
        f"models/{name}m.pt": torch_zip(text, num),
        f"models/{name}m.ckpt": torch_zip(text, num),
        f"models/{name}m.pkl": pickle.dumps({"note": text, "lr": num}, protocol=4),
        f"models/{name}m.keras": keras_zip(text),
        f"gen/{name}results.json": json.dumps({"acc": num, "note": text}),
        f"gen/{name}settings.yaml": f"lr: {num}\nnote: {text}\n",
        f"sql/{name}mlflow.db": sqlite_store(text, num, scratch / "store.db"),
        "ign/.mlcrawlignore": f"*.tmp\n{text}\n",
        "ign/kept.yaml": f"note: {text}\n",
    }
    return Shape(_encode(files), tuple(p for p in files if p != "ign/kept.yaml"))


SHAPES: dict[str, ShapeBuilder] = {
    "mlflow": mlflow, "sacred": sacred, "hydra": hydra, "dvc": dvc, "lightning": lightning,
    "huggingface": huggingface, "wandb": wandb, "tensorboard": tensorboard, "files": files_alone,
}


def _encode(files: dict[str, str | bytes]) -> dict[str, bytes]:
    return {rel: data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data for rel, data in files.items()}


def write(root: Path, files: dict[str, bytes]) -> None:
    """Create ``files`` (shape-relative path -> bytes) under ``root``; names may hold any bytes."""
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
