"""Known secrets planted in every place a crawler reads; no output of mlcrawl may hold one.

Each secret sits beside a harmless value of the same document, so the test also proves that the
document was read (a secret that was never read proves nothing).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb

from tests.hostile.harness import assert_clean, crawl, dump_text

GH = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
AWS = "AKIA" + "QWERTYUIOPASDFGH"
PASSWORD = "Tr0ub4dor-and-3-horses"
URL_PASSWORD = "pw-in-a-url-9931"
HF = "hf_" + "abcdefghijklmnopqrstuvwxyzABCDEFGH"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAplanted0secret0body\n-----END RSA PRIVATE KEY-----"
HEX_KEY = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
SECRETS = (GH, AWS, PASSWORD, URL_PASSWORD, HF, "planted0secret0body", HEX_KEY)
RID = "0123456789abcdef0123456789abcdef"


def _nb(cells: list[dict], metadata: dict) -> str:
    return json.dumps({"cells": cells, "metadata": {"kernelspec": {"name": "python3", "language": "python"}, **metadata},
                       "nbformat": 4, "nbformat_minor": 5})


def plant(root: Path) -> None:
    """A tree of every tool's files, each holding secrets next to ordinary values."""
    files = {
        # generic run: params + metrics; a YAML error message quotes the line it failed on
        "exp/params.yaml": f"lr: 0.1\napi_key: {GH}\ndb:\n  password: {PASSWORD}\n  url: postgresql://alice:{URL_PASSWORD}@db/x\n",
        "exp/metrics.json": '{"acc": 0.9}',
        "broken/params.yaml": f"epochs: 3\ntoken: {HF}\n  bad: [unclosed\n",
        "broken/metrics.json": '{"acc": 0.5}',
        # MLflow file store
        "mlruns/0/meta.yaml": "experiment_id: '0'\nname: Default\nartifact_location: mlruns/0\nlifecycle_stage: active\n",
        f"mlruns/0/{RID}/meta.yaml": (f"run_id: {RID}\nrun_uuid: {RID}\nexperiment_id: '0'\nstatus: 3\nstart_time: 1\n"
                                      f"end_time: 2\nlifecycle_stage: active\nartifact_uri: mlruns/0/{RID}/artifacts\n"
                                      "user_id: alice\nname: r\n"),
        f"mlruns/0/{RID}/params/batch_size": "32",
        f"mlruns/0/{RID}/params/aws_secret_access_key": AWS,
        f"mlruns/0/{RID}/params/signing_key": HEX_KEY,
        f"mlruns/0/{RID}/tags/mlflow.source.git.repoURL": f"https://alice:{URL_PASSWORD}@github.com/org/repo.git",
        f"mlruns/0/{RID}/tags/mlflow.note.content": f"deployed with {GH}",
        f"mlruns/0/{RID}/metrics/loss": "1 0.5 0\n",
        # Hydra job
        "outputs/2024-01-01/12-00-00/.hydra/config.yaml": f"model:\n  depth: 4\nservice:\n  api_key: {HF}\n",
        "outputs/2024-01-01/12-00-00/.hydra/overrides.yaml": f"- model.depth=4\n- service.token={GH}\n",
        "outputs/2024-01-01/12-00-00/.hydra/hydra.yaml": (
            "hydra:\n  run:\n    dir: outputs/${now:%Y-%m-%d}/${now:%H-%M-%S}\n  job:\n    name: train\n"
            f"    override_dirname: service.token={GH}\n  overrides:\n    task:\n    - model.depth=4\n"
            f"    - service.token={GH}\n  runtime:\n    cwd: /home/alice/proj\n"),
        "outputs/2024-01-01/12-00-00/train.log": f"[2024-01-01 12:00:01,000][__main__][INFO] - using {GH}\n",
        # Sacred run
        "sacred/1/run.json": json.dumps({
            "experiment": {"name": "exp", "mainfile": "train.py", "sources": [], "dependencies": [], "base_dir": "/p"},
            "command": "main", "status": "FAILED", "start_time": "2024-01-01T10:00:00.000000",
            "stop_time": "2024-01-01T10:01:00.000000", "host": {"hostname": "h"},
            "meta": {"command": "main", "options": {"UPDATE": [f"password={PASSWORD}"]}, "config_updates": {"password": PASSWORD}},
            "fail_trace": ["Traceback (most recent call last):\n", f"ValueError: bad credentials {GH}\n"],
            "heartbeat": "2024-01-01T10:01:00.000000", "resources": [], "artifacts": [], "captured_out": ""}),
        "sacred/1/config.json": json.dumps({"seed": 7, "password": PASSWORD, "endpoint": f"https://u:{URL_PASSWORD}@h/x"}),
        "sacred/1/cout.txt": f"token={GH}\n",
        "sacred/1/metrics.json": json.dumps({"loss": {"steps": [0], "values": [0.3], "timestamps": ["2024-01-01T10:00:30"]}}),
        # W&B run folder files
        "wandb/run-20240101_120000-abcd1234/files/config.yaml": (
            f"_wandb:\n  value:\n    cli_version: 0.16.0\nlr:\n  value: 0.01\nwandb_api_key:\n  value: {HEX_KEY}\n"),
        "wandb/run-20240101_120000-abcd1234/files/wandb-metadata.json": json.dumps({
            "program": "train.py", "args": ["--lr", "0.01", "--api-key", HF], "host": "h",
            "git": {"remote": f"https://bob:{URL_PASSWORD}@gitlab.com/o/r.git", "commit": "a" * 40}}),
        "wandb/run-20240101_120000-abcd1234/files/wandb-summary.json": '{"acc": 0.7}',
        # papermill notebook: parameters cell, an error output quoting a token
        "nb/analysis.ipynb": _nb([
            {"cell_type": "code", "metadata": {"tags": ["injected-parameters"]}, "execution_count": 1, "outputs": [],
             "source": f'alpha = 0.5\napi_token = "{GH}"\n'},
            {"cell_type": "code", "metadata": {}, "execution_count": 2, "source": "connect()",
             "outputs": [{"output_type": "error", "ename": "AuthError", "evalue": f"rejected {HF}",
                          "traceback": [f"AuthError: rejected {HF}"]}]},
        ], {"papermill": {"parameters": {"alpha": 0.5, "api_token": GH, "dsn": f"mysql://root:{URL_PASSWORD}@db/x"},
                          "input_path": "in.ipynb", "output_path": "nb/analysis.ipynb", "exception": True}}),
        # a PEM key in a config beside a model
        "models/config.yaml": f"replicas: 2\ntls_key: |\n  {PEM.replace(chr(10), chr(10) + '  ')}\n",
        "models/metrics.json": '{"auc": 0.8}',
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def test_no_planted_secret_reaches_any_output(tmp_path):
    root, db, log = tmp_path / "root", tmp_path / "cat.duckdb", tmp_path / "logs" / "crawl.jsonl"
    plant(root)
    result = crawl(root, db, "--log-file", str(log))
    summary = assert_clean(result)
    catalog = dump_text(db)
    with duckdb.connect(str(db), read_only=True) as con:
        params = {k: v for k, v in con.execute("SELECT key, value FROM params").fetchall()}
        runs = {r[0] for r in con.execute("SELECT source FROM runs").fetchall()}
    # Every document was read: its harmless neighbour is in the catalog.
    assert {"mlflow", "hydra", "sacred", "wandb", "generic", "notebook"} <= runs, runs
    assert {"lr", "batch_size", "model.depth", "seed", "alpha", "replicas"} <= params.keys(), sorted(params)
    assert summary["secrets_redacted"] >= 15, summary

    export_dir, lineage = tmp_path / "export", tmp_path / "ol.jsonl"
    cli = [sys.executable, "-m", "mlcrawl"]
    exported = subprocess.run([*cli, "export", str(export_dir), "--catalog", str(db), "--openlineage", str(lineage)],
                              capture_output=True, text=True, timeout=120)
    assert exported.returncode == 0, exported.stderr
    with duckdb.connect() as con:
        parquet = "\n".join(repr(r) for p in sorted(export_dir.glob("*.parquet"))
                            for r in con.execute("SELECT * FROM read_parquet(?)", [str(p)]).fetchall())
    assert parquet and lineage.read_text()
    status = subprocess.run([*cli, "status", "--catalog", str(db)], capture_output=True, text=True, timeout=120)
    outputs = {"catalog": catalog, "stdout": result.stdout, "stderr": result.stderr, "log file": log.read_text(),
               "parquet export": parquet, "openlineage": lineage.read_text(), "status": status.stdout + status.stderr}
    leaked = {name: _leaks(text) for name, text in outputs.items() if _leaks(text)}
    assert not leaked, leaked
