"""W&B crawler: log framing on the real logs, the no-extra path, decoded runs vs TRUTH.json."""

from __future__ import annotations

import json
import shutil
import struct
import sys
import zlib
from collections import Counter
from pathlib import Path

import pytest
from conftest import crawl_unit
from mlcrawl.crawlers.wandb import (
    EXTRA_HINT,
    LogFormatError,
    WandbCrawler,
    check_log_header,
    iter_log_records,
)

from mlcrawl.crawler import CrawlContext
from mlcrawl.records import Artifact, Metric, Param, Run, Tag
from mlcrawl.secrets import REDACTED

BLOCK = 32768


def wandb_truth(truth: dict) -> list[dict]:
    runs = [r for r in truth["runs"] if r["source"] == "wandb"]
    assert runs, "TRUTH.json has no wandb runs"
    return runs


def read_log(path: Path, root: Path) -> tuple[list[bytes], list]:
    ctx = CrawlContext.for_root(root, path.parent)
    return list(iter_log_records(path.read_bytes(), ctx, path)), ctx.warnings


def write_log(path: Path, payloads: list[bytes]) -> bytes:
    """A LevelDB-log file as W&B writes it, fragments split at 32 KiB block boundaries."""
    out = bytearray(b":W&B" + struct.pack("<HB", 0xBEE1, 0))
    for payload in payloads:
        rest, first = payload, True
        while True:
            left = BLOCK - len(out) % BLOCK
            if left < 7:
                out += b"\0" * left
                continue
            chunk, rest = rest[: left - 7], rest[left - 7:]
            kind = (1 if first else 4) if not rest else (2 if first else 3)
            out += struct.pack("<IHB", zlib.crc32(chunk, zlib.crc32(bytes([kind]))), len(chunk), kind)
            out += chunk
            first = False
            if not rest:
                break
    path.write_bytes(bytes(out))
    return bytes(out)


@pytest.fixture
def without_wandb(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import wandb`` fail, as it does without the ``mlcrawl[wandb]`` extra."""
    monkeypatch.setitem(sys.modules, "wandb", None)
    monkeypatch.setitem(sys.modules, "wandb.proto", None)


# --- framing, no wandb needed -------------------------------------------------------------------


def test_framing_counts_every_record_of_the_real_logs(corpus: Path, truth: dict) -> None:
    for expected in wandb_truth(truth):
        log = corpus / expected["transaction_log"]
        assert check_log_header(log.read_bytes()[:7]) == 0
        records, warnings = read_log(log, corpus)
        assert warnings == []
        assert len(records) == sum(expected["record_counts"].values())
        assert all(record for record in records)


def test_framing_reassembles_records_across_blocks(tmp_path: Path) -> None:
    payloads = [b"a" * 100, bytes(range(256)) * 300, b"b" * (BLOCK - 7 - 7 - 100 - 7 - 3), b"c", b""]
    write_log(tmp_path / "x.wandb", payloads)
    records, warnings = read_log(tmp_path / "x.wandb", tmp_path)
    assert warnings == []
    assert records == payloads


def test_framing_skips_a_corrupt_block_and_keeps_the_rest(tmp_path: Path) -> None:
    payloads = [bytes([i]) * 1000 for i in range(100)]  # ~3 blocks
    data = bytearray(write_log(tmp_path / "x.wandb", payloads))
    data[7 + 7 + 10] ^= 0xFF  # first record's payload, in block 0
    (tmp_path / "x.wandb").write_bytes(bytes(data))
    records, warnings = read_log(tmp_path / "x.wandb", tmp_path)
    assert len(warnings) == 1 and "corrupt log fragment at offset 7" in warnings[0].message
    assert records[0] != payloads[0]
    assert records == payloads[len(payloads) - len(records):]
    assert 0 < len(records) < len(payloads) - 20


def test_truncated_log_keeps_complete_records(corpus: Path, truth: dict, tmp_path: Path) -> None:
    expected = wandb_truth(truth)[0]
    full = (corpus / expected["transaction_log"]).read_bytes()
    (tmp_path / "t.wandb").write_bytes(full[: len(full) // 2 + 3])
    records, warnings = read_log(tmp_path / "t.wandb", tmp_path)
    complete, _ = read_log(corpus / expected["transaction_log"], corpus)
    assert warnings == []
    assert 0 < len(records) < len(complete)
    assert records == complete[: len(records)]


def test_not_a_wandb_log(tmp_path: Path) -> None:
    with pytest.raises(LogFormatError):
        check_log_header(b"PK\x03\x04 zip")
    with pytest.raises(LogFormatError):
        check_log_header(b":W&")


def test_match_folder(tmp_path: Path) -> None:
    crawler = WandbCrawler()
    assert crawler.match_folder(tmp_path / "offline-run-20261123_155007-d4tkmrgp",
                                frozenset({"run-d4tkmrgp.wandb", "files", "logs"}))
    assert crawler.match_folder(tmp_path / "run-20240101_120000-ab12cd34", frozenset({"files"}))
    assert not crawler.match_folder(tmp_path / "run-20240101_120000-ab12cd34", frozenset({"x.txt"}))
    assert not crawler.match_folder(tmp_path / "latest-run", frozenset({"files"}))
    assert not crawler.match_folder(tmp_path / "run-1", frozenset({"files"}))


# --- without the extra --------------------------------------------------------------------------


def test_without_extra_warns_and_keeps_folder_facts(corpus: Path, truth: dict, without_wandb: None) -> None:
    for expected in wandb_truth(truth):
        records, warnings = crawl_unit(WandbCrawler(), corpus, corpus / expected["dir"])
        assert [w.error_type for w in warnings] == ["missing_extra"]
        assert EXTRA_HINT in warnings[0].message
        run = next(r for r in records if isinstance(r, Run))
        assert (run.run_id, run.source_run_id, run.dir) == (
            f"wandb:{expected['run_id']}", expected["run_id"], expected["dir"])
        artifacts = {a.path for a in records if isinstance(a, Artifact)}
        assert artifacts == {f"{expected['dir']}/files/{n}" for n in expected["files_dir"]} | {
            expected["transaction_log"]}
        assert not any(isinstance(r, Metric) for r in records)
        metadata = expected.get("files_dir_content", {}).get("wandb-metadata.json")
        if metadata:
            tags = {t.key: t.value for t in records if isinstance(t, Tag)}
            assert tags["wandb.host"] == metadata["host"]
            assert tags["wandb.python"] == metadata["python"]


# --- with the extra -----------------------------------------------------------------------------


def test_decoded_runs_match_truth(corpus: Path, truth: dict) -> None:
    pytest.importorskip("wandb.proto.wandb_internal_pb2")
    for expected in wandb_truth(truth):
        records, warnings = crawl_unit(WandbCrawler(), corpus, corpus / expected["dir"])
        assert warnings == []
        run = next(r for r in records if isinstance(r, Run))
        assert run.run_id == f"wandb:{expected['run_id']}"
        assert (run.experiment, run.name) == (expected["project"], expected["display_name"])
        assert run.group == (expected["group"] or None)
        assert run.status == ("FINISHED" if expected["exit_code"] == 0 else "FAILED")
        tags = {t.key: t.value for t in records if isinstance(t, Tag)}
        assert tags["wandb.exit_code"] == str(expected["exit_code"])
        assert {k for k, v in tags.items() if v is None} == set(expected["tags"])
        params = {p.key: p.value for p in records if isinstance(p, Param)}
        assert params == {k: json.dumps(v) if not isinstance(v, str) else v
                          for k, v in expected["config"].items()}
        check_history(records, expected)
        check_summary(records, expected)


def check_history(records: list, expected: dict) -> None:
    history = [m for m in records if isinstance(m, Metric) and m.step is not None]
    counts = Counter(m.key for m in history)
    assert counts == {k: n for k, n in expected["history_key_counts"].items() if not k.startswith("_")}
    assert len({m.step for m in history}) == expected["history_rows"]
    assert all(m.timestamp is not None for m in history)


def check_summary(records: list, expected: dict) -> None:
    latest: dict[str, Metric] = {}
    for metric in records:
        if isinstance(metric, Metric):
            previous = latest.get(metric.key)
            if previous is None or metric.step is None or (previous.step or 0) <= metric.step:
                latest[metric.key] = metric
    assert {k: m.value for k, m in latest.items()} == {k: float(v) for k, v in expected["summary"].items()}


def test_truncated_log_with_extra(corpus: Path, truth: dict, tmp_path: Path) -> None:
    pytest.importorskip("wandb.proto.wandb_internal_pb2")
    expected = max(wandb_truth(truth), key=lambda r: r["history_rows"])
    folder = tmp_path / "wandb" / Path(expected["dir"]).name
    shutil.copytree(corpus / expected["dir"], folder, symlinks=True)
    log = folder / Path(expected["transaction_log"]).name
    log.write_bytes(log.read_bytes()[: log.stat().st_size // 2])
    records, warnings = crawl_unit(WandbCrawler(), tmp_path, folder)
    assert warnings == []
    run = next(r for r in records if isinstance(r, Run))
    assert run.status is None and run.end_time is None  # no exit record yet
    steps = {m.step for m in records if isinstance(m, Metric) and m.step is not None}
    assert 0 < len(steps) < expected["history_rows"]


# --- the folder's own files ---------------------------------------------------------------------


def make_run_folder(tmp_path: Path, config: str) -> Path:
    folder = tmp_path / "wandb" / "run-20240101_120000-abc123"
    (folder / "files" / "media").mkdir(parents=True)
    (folder / "files" / "config.yaml").write_text(config)
    (folder / "files" / "wandb-summary.json").write_text(json.dumps(
        {"acc": 0.9, "best": {"loss": 0.1}, "label": "ok", "_runtime": 3, "_wandb": {"runtime": 3},
         "plot": {"_type": "image-file", "path": "media/plot.png", "width": 64}}))
    (folder / "files" / "wandb-metadata.json").write_text(json.dumps({
        "program": "train.py", "args": ["--lr", "0.1", "--api-key", "hunter2"], "host": "gpu1",
        "python": "3.10.1", "email": "ada@example.org", "username": "ada",
        "startedAt": "2024-01-01T12:00:00.5", "git": {"commit": "abc" * 13 + "d", "remote": None}}))
    (folder / "files" / "media" / "plot.png").write_bytes(b"\x89PNG")
    return folder


def test_folder_files_are_read_and_redacted(tmp_path: Path) -> None:
    config = ("wandb_version: 1\n_wandb:\n  desc: null\n  value: {cli_version: 0.15.0}\n"
              "lr:\n  desc: null\n  value: 0.1\nmodel:\n  desc: null\n  value: {depth: 3}\n")
    folder = make_run_folder(tmp_path, config)
    records, warnings = crawl_unit(WandbCrawler(), tmp_path, folder)
    assert warnings == []
    assert {p.key: p.value for p in records if isinstance(p, Param)} == {"lr": "0.1", "model.depth": "3"}
    assert {m.key: m.value for m in records if isinstance(m, Metric)} == {"acc": 0.9, "best.loss": 0.1}
    tags = {t.key: t.value for t in records if isinstance(t, Tag)}
    assert tags["wandb.email"] == REDACTED
    assert "hunter2" not in tags["wandb.args"] and "--lr" in tags["wandb.args"]
    assert tags["wandb.summary.label"] == "ok"
    run = next(r for r in records if isinstance(r, Run))
    assert (run.run_id, run.user, run.git_commit) == ("wandb:abc123", "ada", "abc" * 13 + "d")
    assert run.start_time.isoformat() == "2024-01-01T12:00:00.500000+00:00"
    roles = {a.path.rsplit("/", 1)[1]: a.role for a in records if isinstance(a, Artifact)}
    assert roles == {"config.yaml": "config", "wandb-summary.json": "output",
                     "wandb-metadata.json": "environment", "plot.png": "artifact"}


def test_config_that_is_not_yaml_warns_and_keeps_the_rest(tmp_path: Path) -> None:
    folder = make_run_folder(tmp_path, "lr: {value: [0.1\n  : : :\n\t- broken")
    records, warnings = crawl_unit(WandbCrawler(), tmp_path, folder)
    assert [w.error_type for w in warnings] == ["bad_config"]
    assert warnings[0].path.endswith("files/config.yaml")
    assert not any(isinstance(r, Param) for r in records)
    assert {m.key for m in records if isinstance(m, Metric)} == {"acc", "best.loss"}


def test_garbage_log_does_not_crash(tmp_path: Path) -> None:
    pytest.importorskip("wandb.proto.wandb_internal_pb2")
    folder = make_run_folder(tmp_path, "lr: {value: 1}\n")
    (folder / "run-abc123.wandb").write_bytes(b"not a log at all" * 10)
    records, warnings = crawl_unit(WandbCrawler(), tmp_path, folder)
    assert [w.error_type for w in warnings] == ["unreadable_log"]
    assert any(isinstance(r, Run) for r in records)
