"""File kinds and formats, judged from names only (the walk must stay cheap)."""

from __future__ import annotations

import re

KINDS = ("notebook", "code", "config", "metrics", "dataset", "model", "checkpoint", "log", "image", "archive", "other")

_BY_SUFFIX: dict[str, tuple[str, str]] = {
    ".ipynb": ("notebook", "ipynb"),
    **{s: ("code", s[1:]) for s in (".py", ".r", ".jl", ".sh", ".scala", ".java", ".cpp", ".c", ".h",
                                     ".js", ".ts", ".go", ".rs", ".sql", ".m", ".pyx")},
    **{s: ("config", s[1:]) for s in (".yaml", ".yml", ".toml", ".ini", ".cfg", ".conf", ".dvc", ".lock")},
    **{s: ("dataset", s[1:]) for s in (".csv", ".tsv", ".parquet", ".feather", ".arrow", ".jsonl", ".ndjson",
                                       ".npy", ".npz", ".h5", ".hdf5", ".xlsx", ".xls", ".avro", ".orc",
                                       ".tfrecord", ".tfrecords", ".db", ".sqlite", ".txt")},
    **{s: ("model", s[1:]) for s in (".joblib", ".pkl", ".pickle", ".onnx", ".safetensors", ".pt", ".pth",
                                     ".keras", ".pb", ".tflite", ".skops", ".gguf", ".mlmodel", ".bin")},
    ".ckpt": ("checkpoint", "ckpt"),
    **{s: ("log", s[1:]) for s in (".log", ".out", ".err", ".wandb")},
    **{s: ("image", s[1:]) for s in (".png", ".jpg", ".jpeg", ".gif", ".svg", ".bmp", ".tif", ".tiff", ".webp")},
    **{s: ("archive", s[1:]) for s in (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".zst")},
    ".json": ("config", "json"),
    ".md": ("other", "markdown"),
}
_METRICS_NAME = re.compile(r"(^|[_-])(metrics?|results?|scores?|eval|evaluation)([_-]|$)", re.IGNORECASE)
_CHECKPOINT_DIR = re.compile(r"^(checkpoints?|checkpoint-\d+|ckpt)$", re.IGNORECASE)
_CHECKPOINT_FILE = {"optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json", "training_args.bin"}
_SPECIAL = {
    "MLmodel": ("config", "mlmodel"),
    "Dockerfile": ("config", "dockerfile"),
    "requirements.txt": ("config", "requirements"),
    "dvc.lock": ("config", "dvc-lock"),
    "dvc.yaml": ("config", "dvc-yaml"),
    "packed-refs": ("other", "git"),
}


def name_parts(name: str) -> tuple[list[str], str]:
    """``(suffixes, stem)`` of a file name, as ``PurePosixPath`` gives them, without building one.

    classify runs for every new or changed file; pathlib objects were most of its cost.
    """
    if name.endswith("."):
        suffixes = []
    else:
        suffixes = ["." + part for part in name.lstrip(".").split(".")[1:]]
    dot = name.rfind(".")
    stem = name[:dot] if 0 < dot < len(name) - 1 else name
    return suffixes, stem


def classify(rel_path: str) -> tuple[str, str]:
    """``(kind, format)`` of a root-relative POSIX path."""
    folder, _, name = rel_path.rpartition("/")
    if name in _SPECIAL:
        return _SPECIAL[name]
    if name.startswith("events.out.tfevents."):
        return "log", "tfevents"
    parent = folder.rpartition("/")[2]
    all_suffixes, stem = name_parts(name)
    suffixes = [s.lower() for s in all_suffixes[-2:]]
    suffix = suffixes[-1] if suffixes else ""
    kind, fmt = _BY_SUFFIX.get(suffix, ("other", suffix[1:] if suffix else ""))
    if suffix in (".gz", ".bz2", ".xz", ".zst") and len(suffixes) == 2 and suffixes[0] in _BY_SUFFIX:
        inner_kind, inner_fmt = _BY_SUFFIX[suffixes[0]]
        if inner_kind == "dataset":
            return "dataset", f"{inner_fmt}.{suffix[1:]}"
    in_checkpoint_dir = bool(parent) and _CHECKPOINT_DIR.match(parent) is not None
    if name in _CHECKPOINT_FILE or (in_checkpoint_dir and kind in ("model", "other")):
        return "checkpoint", fmt
    if suffix in (".json", ".yaml", ".yml", ".csv") and _METRICS_NAME.search(stem):
        return "metrics", fmt
    if parent == "metrics" and suffix in ("", ".json", ".yaml", ".csv"):
        return "metrics", fmt or "mlflow-metric"
    if suffix == ".txt" and kind == "dataset" and not any(k in name.lower() for k in ("data", "train", "test", "val")):
        return "other", "txt"
    return kind, fmt
