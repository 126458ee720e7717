"""Every file a built-in crawler reads, fuzzed in place inside its tool's folder shape and crawled
through a real CrawlContext: records valid, refusals clear, no hang (see contract.py)."""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hostile.shapes import SHAPES, write
from mlcrawl.registry import discover, select

from .contract import crawl_unit
from .strategies import inputs, json_documents, mutated, seeds, yaml_documents

CRAWLERS = {c.name: c for c in select(discover())}


@dataclass(frozen=True)
class Target:
    """One fuzzed file: the crawler, its tool's shape, where the file sits, and the unit read."""

    crawler: str
    shape: str
    place: str
    unit: str
    strategy: st.SearchStrategy[bytes] = field(repr=False)
    run_folder: str | None = None  # an enclosing run the core would name (environment, generic)

    @property
    def id(self) -> str:
        return f"{self.crawler}:{self.place.rsplit('/', 1)[-1]}"


def _zip_with(member: str) -> st.SearchStrategy[bytes]:
    """A zip holding ``member`` made of mutated pickles (the zip itself stays readable)."""
    def build(data: bytes) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr(member, data)
            zf.writestr(member.rsplit("/", 1)[0] + "/version", "3\n")
        return buf.getvalue()
    return mutated(seeds(("*.pkl", "data.pkl"))).map(build)


def _text() -> st.SearchStrategy[bytes]:
    return st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass"))


RUN = "mlruns/0/run"
HYDRA = "outputs/2024-01-01/12-00-00"
WANDB = "wandb/run-20240101_000000-abc"
TARGETS = [
    Target("mlflow", "mlflow", "mlruns/0/meta.yaml", "mlruns/0", inputs("meta.yaml", structured=yaml_documents())),
    Target("mlflow", "mlflow", f"{RUN}/meta.yaml", RUN, inputs("meta.yaml", structured=yaml_documents())),
    Target("mlflow", "mlflow", f"{RUN}/params/lr", RUN, st.one_of(_text(), st.binary(max_size=300))),
    Target("mlflow", "mlflow", f"{RUN}/metrics/loss", RUN, inputs("loss", "val_accuracy", "train_loss")),
    Target("mlflow", "mlflow", f"{RUN}/tags/mlflow.note.", RUN, st.one_of(_text(), st.binary(max_size=300))),
    Target("mlflow", "mlflow", f"{RUN}/artifacts/model/MLmodel", f"{RUN}/artifacts/model/MLmodel",
           inputs("MLmodel", structured=yaml_documents())),
    Target("sacred", "sacred", "runs/1/run.json", "runs/1", inputs("run.json", structured=json_documents())),
    Target("sacred", "sacred", "runs/1/config.json", "runs/1", inputs("config.json", structured=json_documents())),
    Target("sacred", "sacred", "runs/1/metrics.json", "runs/1", inputs("metrics.json", structured=json_documents())),
    Target("hydra", "hydra", f"{HYDRA}/.hydra/config.yaml", HYDRA, inputs("config.yaml", structured=yaml_documents())),
    Target("hydra", "hydra", f"{HYDRA}/.hydra/hydra.yaml", HYDRA, inputs("hydra.yaml", structured=yaml_documents())),
    Target("hydra", "hydra", f"{HYDRA}/.hydra/overrides.yaml", HYDRA,
           inputs("overrides.yaml", structured=yaml_documents())),
    Target("hydra", "hydra", "multirun/2024-01-01/12-00-00/multirun.yaml", "multirun/2024-01-01/12-00-00",
           inputs("multirun.yaml", structured=yaml_documents())),
    Target("dvc", "dvc", "proj/dvc.yaml", "proj", inputs("dvc.yaml", structured=yaml_documents())),
    Target("dvc", "dvc", "proj/dvc.lock", "proj", inputs("dvc.lock", structured=yaml_documents())),
    Target("dvc", "dvc", "proj/params.yaml", "proj", inputs("params.yaml", structured=yaml_documents())),
    Target("dvc", "dvc", "proj/raw.csv.dvc", "proj/raw.csv.dvc", inputs("*.dvc", structured=yaml_documents())),
    Target("lightning", "lightning", "lightning_logs/version_0/hparams.yaml", "lightning_logs/version_0",
           inputs("hparams.yaml", structured=yaml_documents())),
    Target("lightning", "lightning", "lightning_logs/version_0/metrics.csv", "lightning_logs/version_0",
           inputs("metrics.csv")),
    Target("huggingface", "huggingface", "hf/out/trainer_state.json", "hf/out",
           inputs("trainer_state.json", structured=json_documents())),
    Target("huggingface", "huggingface", "hf/out/config.json", "hf/out", inputs("config.json", structured=json_documents())),
    Target("huggingface", "huggingface", "hf/out/all_results.json", "hf/out",
           inputs("*results.json", structured=json_documents())),
    # W&B's documents (its binary .wandb log decoding is being rewritten and is not fuzzed here yet).
    Target("wandb", "wandb", f"{WANDB}/files/config.yaml", WANDB, inputs("config.yaml", structured=yaml_documents())),
    Target("wandb", "wandb", f"{WANDB}/files/wandb-summary.json", WANDB,
           inputs("wandb-summary.json", structured=json_documents())),
    Target("wandb", "wandb", f"{WANDB}/files/wandb-metadata.json", WANDB,
           inputs("wandb-metadata.json", structured=json_documents())),
    Target("tensorboard", "tensorboard", "tb/run/events.out.tfevents.1700000000.host.1.0", "tb/run",
           inputs("events.out.tfevents.*")),
    Target("notebook", "files", "nb/analysis.ipynb", "nb/analysis.ipynb", inputs("*.ipynb", structured=json_documents())),
    Target("code", "files", "code/train.py", "code/train.py", inputs("*.py", structured=_text())),
    Target("datasets", "files", "data/table.csv", "data/table.csv", inputs("*.csv")),
    Target("datasets", "files", "data/table.parquet", "data/table.parquet", inputs("*.parquet")),
    Target("datasets", "files", "data/rows.jsonl", "data/rows.jsonl", inputs("*.jsonl", structured=json_documents())),
    Target("models", "files", "models/w.safetensors", "models/w.safetensors", inputs("*.safetensors")),
    Target("models", "files", "models/m.onnx", "models/m.onnx", inputs("*.onnx")),
    Target("models", "files", "models/m.pt", "models/m.pt", st.one_of(inputs("*.pt"), _zip_with("archive/data.pkl"))),
    Target("models", "files", "models/m.pkl", "models/m.pkl", inputs("*.pkl", "*.joblib")),
    Target("mlflow_sqlite", "files", "sql/mlflow.db", "sql/mlflow.db", inputs("mlflow.db")),
    Target("generic", "files", "gen/eval/metrics.json", "gen/eval/metrics.json", inputs("*.json", structured=json_documents()),
           run_folder="gen"),
    Target("generic", "files", "gen/metrics/scores.yaml", "gen/metrics/scores.yaml",
           inputs("*.yaml", structured=yaml_documents()), run_folder="gen"),
    Target("environment", "files", "gen/requirements.txt", "gen/requirements.txt",
           inputs("requirements*.txt", "*freeze*.txt", structured=_text()), run_folder="gen"),
    Target("environment", "files", "gen/environment.yml", "gen/environment.yml",
           inputs("environment.y*ml", "conda.yaml", structured=yaml_documents()), run_folder="gen"),
]


class _Trees(dict):
    def __repr__(self) -> str:  # the shapes' bytes would fill a failure report
        return f"<{len(self)} shape trees>"


@pytest.fixture(scope="module")
def trees():
    """One tree per shape, built once; each example overwrites only its target file."""
    with tempfile.TemporaryDirectory() as tmp:
        built = _Trees()
        for name, builder in SHAPES.items():
            root = Path(tmp) / name
            files = builder("plain", 1.5, "", Path(tmp)).files
            write(root, files)
            built[name] = (root, files)
        yield built


def test_every_crawler_that_reads_bytes_is_fuzzed() -> None:
    fuzzed = {t.crawler for t in TARGETS}
    assert set(CRAWLERS) - fuzzed <= {"tsv_results"}  # the example plugin, when installed


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.id)
@given(data=st.data())
def test_fuzzed_file_keeps_the_crawler_contract(trees, target: Target, data) -> None:
    root, files = trees[target.shape]
    path = root / target.place
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.draw(target.strategy, label=target.place))
    enclosing = {}
    if target.run_folder:
        enclosing["enclosing_runs"] = ((root / target.run_folder, f"fuzz:{target.run_folder}"),)
    try:
        crawl_unit(CRAWLERS[target.crawler], root, root / target.unit, **enclosing)
    finally:
        # The next example (and the next target in this shape) starts from the valid shape.
        if target.place in files:
            path.write_bytes(files[target.place])
        for sidecar in ("-wal", "-shm", "-journal"):
            Path(os.fspath(path) + sidecar).unlink(missing_ok=True)
