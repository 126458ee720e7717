"""Pathological inputs, each small on disk (or sparse) and each under a name a crawler reads.

Every bomb is refused in bounded time and memory as one row; ``BOMBS`` maps the bomb's path (in
its tool's folder shape) to a builder writing it.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

from .shapes import _field, _varint, masked_crc32c, parquet, tfrecord, torch_zip, write

GIB = 1 << 30


def sparse(path: Path, head: bytes, size: int = GIB) -> None:
    """``head`` followed by zeros up to ``size`` bytes, without writing the zeros (a sparse file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)


def _bytes(data: bytes) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return build


def nested_json(depth: int = 100_000) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def nested_list_json(depth: int = 100_000) -> bytes:
    return b"[" * depth + b"]" * depth


def billion_laughs() -> bytes:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for n in range(1, 10):
        prev, cur = chr(ord("a") + n - 1), chr(ord("a") + n)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    return ("\n".join(lines) + "\n").encode()


def deep_yaml(depth: int = 100_000) -> bytes:
    return b"[" * depth + b"]" * depth


def zip_bomb(member: str, size: int = 400 << 20) -> bytes:
    """A zip whose one member inflates ``size`` zero bytes from a few hundred KiB."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open(zipfile.ZipInfo(member), "w", force_zip64=True) as out:
            chunk = b"\0" * (1 << 20)
            for _ in range(size >> 20):
                out.write(chunk)
    return buf.getvalue()


def zip_lying_sizes(member: str) -> bytes:
    """A zip whose central directory declares a 1 EiB member (the data is a few bytes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(member, b"\x80\x02}q\x00.")
    data = bytearray(buf.getvalue())
    cd = data.rfind(b"PK\x01\x02")
    # Uncompressed size (offset 24 in the central header) to 0xFFFFFFFF, and the local one too.
    struct.pack_into("<I", data, cd + 24, 0xFFFFFFFF)
    struct.pack_into("<I", data, 22, 0xFFFFFFFF)
    return bytes(data)


def many_members(n: int = 60_000) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(n):
            zf.writestr(f"archive/data/{i}", b"")
        zf.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    return buf.getvalue()


def parquet_huge_footer() -> bytes:
    body = parquet("a", 1.0)
    return body[:-8] + struct.pack("<I", 0x7FFFFFF0) + b"PAR1"


def safetensors_exabytes() -> bytes:
    return struct.pack("<Q", 1 << 60) + b'{"w": {}}'


def tfevents_length_2_63() -> bytes:
    """A framed record whose length is 2**63 with a valid length CRC."""
    length = struct.pack("<Q", 1 << 63)
    return length + struct.pack("<I", masked_crc32c(length)) + b"\0" * 64


def tfevents_inner_length_2_63() -> bytes:
    """A record with valid CRCs whose event claims a 2**63-byte summary field."""
    event = _varint(1 << 3 | 1) + struct.pack("<d", 1.7e9) + _varint(5 << 3 | 2) + _varint(1 << 63) + b"xx"
    return tfrecord(event)


def onnx_length_2_63() -> bytes:
    return _varint(1 << 3) + _varint(8) + _varint(7 << 3 | 2) + _varint((1 << 63) - 1) + _field(2, b"x")


def pickle_memo_bomb() -> bytes:
    """A pickle that builds a list of lists doubling in size through memo references."""
    out = bytearray(b"\x80\x02]q\x00(K\x01K\x02e")  # [1, 2] memoised as 0
    for i in range(1, 60):
        out += b"]q" + bytes([i % 256]) + b"(h" + bytes([(i - 1) % 256]) + b"h" + bytes([(i - 1) % 256]) + b"e"
    return bytes(out + b".")


def ipynb_deep_outputs() -> bytes:
    return b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": ' + nested_list_json(50_000) + b"}"


#: path in the bombs tree -> builder.  The folders around them make each one sit where its tool
#: would put it (an MLflow run, a Hydra output, a Lightning version folder...).
BOMBS: dict[str, Callable[[Path], None]] = {
    "nb/huge_single_line.ipynb": lambda p: sparse(p, b'{"cells": [{"source": "'),
    "data/huge_single_line.csv": lambda p: sparse(p, b"a,b,c,"),
    "data/huge_single_line.jsonl": lambda p: sparse(p, b'{"a": "'),
    "outputs/2024-01-01/12-00-02/metrics/nested.json": _bytes(nested_json()),
    "outputs/2024-01-01/12-00-02/metrics/nested_list.json": _bytes(nested_list_json()),
    "outputs/2024-01-01/12-00-02/metrics/laughs.yaml": _bytes(billion_laughs()),
    "outputs/2024-01-01/12-00-02/metrics/deep.yaml": _bytes(deep_yaml()),
    "nb/nested.ipynb": _bytes(ipynb_deep_outputs()),
    "hf/out/trainer_state.json": _bytes(nested_json()),
    "runs/1/run.json": _bytes(nested_json()),
    "runs/1/config.json": _bytes(b'{"x": ' + nested_list_json() + b"}"),
    "outputs/2024-01-01/12-00-00/.hydra/config.yaml": _bytes(billion_laughs()),
    "outputs/2024-01-01/12-00-01/.hydra/config.yaml": _bytes(deep_yaml()),
    "proj/dvc.yaml": _bytes(billion_laughs()),
    "proj/params.yaml": _bytes(billion_laughs()),
    "lightning_logs/version_0/hparams.yaml": _bytes(billion_laughs()),
    "mlruns/0/meta.yaml": _bytes(billion_laughs()),
    "wandb/run-20240101_000000-abc/files/config.yaml": _bytes(billion_laughs()),
    "models/bomb.pt": _bytes(zip_bomb("archive/data.pkl")),
    "models/bomb.ckpt": _bytes(zip_bomb("bomb/data.pkl")),
    "models/bomb.keras": _bytes(zip_bomb("config.json")),
    "models/lying.pt": _bytes(zip_lying_sizes("archive/data.pkl")),
    "models/lying.keras": _bytes(zip_lying_sizes("config.json")),
    "models/many.pt": _bytes(many_members()),
    "lightning_logs/version_0/checkpoints/bomb.ckpt": _bytes(zip_bomb("bomb/data.pkl")),
    "models/memo.pkl": _bytes(pickle_memo_bomb()),
    "models/huge.safetensors": _bytes(safetensors_exabytes()),
    "models/sparse.safetensors": lambda p: sparse(p, struct.pack("<Q", GIB - 16) + b"{"),
    "models/huge.onnx": _bytes(onnx_length_2_63()),
    "data/huge_footer.parquet": _bytes(parquet_huge_footer()),
    "tb/a/events.out.tfevents.1.host": _bytes(tfevents_length_2_63()),
    "tb/b/events.out.tfevents.1.host": _bytes(tfevents_inner_length_2_63()),
    "tb/c/events.out.tfevents.1.host": lambda p: sparse(p, b"", 64 << 20),
    "tb/d/events.out.tfevents.1.host": lambda p: sparse(p, b"\x01", 512 << 20),
    "code/nul.py": lambda p: sparse(p, b"x = 1\n", 200 << 20),
}

#: Files beside the bombs that make each folder its tool's shape.
CONTEXT = {
    "runs/1/cout.txt": b"",
    "outputs/2024-01-01/12-00-00/.hydra/overrides.yaml": b"[]\n",
    "outputs/2024-01-01/12-00-01/.hydra/overrides.yaml": b"[]\n",
    "outputs/2024-01-01/12-00-02/.hydra/config.yaml": b"lr: 0.1\n",
    "outputs/2024-01-01/12-00-02/.hydra/overrides.yaml": b"[]\n",
    "lightning_logs/version_0/metrics.csv": b"step,loss\n0,1.0\n",
    "mlruns/0/r1/meta.yaml": b"run_id: r1\nexperiment_id: '0'\nstatus: 3\nstart_time: 1\nlifecycle_stage: active\n",
    "mlruns/0/r1/params/lr": b"0.1",
    "wandb/run-20240101_000000-abc/run-abc.wandb": b"",
}


def build(root: Path) -> list[str]:
    """Write every bomb and its context under ``root``; returns the bombs' paths."""
    write(root, CONTEXT)
    for rel, builder in BOMBS.items():
        builder(root / rel)
    return list(BOMBS)


def deep_tree(root: Path, depth: int = 10_000) -> str:
    """A chain of ``depth`` nested folders with a notebook at the bottom; returns its rel path.

    Built with relative ``mkdir`` from inside the chain: the full path is far over PATH_MAX.
    """
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            nxt = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        leaf = os.open("params.yaml", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(leaf, json.dumps({"lr": 0.1}).encode())
        os.close(leaf)
    finally:
        os.close(fd)
    return "/".join(["d"] * depth) + "/params.yaml"


def remove_deep_tree(root: Path) -> None:
    """Delete a chain made by ``deep_tree`` without recursion (pytest's rmtree would recurse)."""
    depth = 0
    fd = os.open(root, os.O_RDONLY)
    try:
        while "d" in os.listdir(fd):
            nxt = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd, depth = nxt, depth + 1
        for name in os.listdir(fd):
            os.unlink(name, dir_fd=fd)
        for _ in range(depth):
            parent = os.open("..", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = parent
            os.rmdir("d", dir_fd=fd)
    finally:
        os.close(fd)
