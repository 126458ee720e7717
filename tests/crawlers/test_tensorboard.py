"""TensorBoard crawler: corpus runs against TRUTH.json, TF2 tensor scalars, bad event files."""

from __future__ import annotations

import json
import shutil
import struct
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import crawl_unit
from mlcrawl.crawlers._formats.tfevents import crc32c, masked_crc32c, read_hparams, read_scalars
from mlcrawl.crawlers.tensorboard import TensorboardCrawler

from mlcrawl.crawler import CrawlContext
from mlcrawl.parsing import to_text
from mlcrawl.records import Metric, Param, Run, Tag

# --- a tiny protobuf/TFRecord writer, independent of the reader under test ----------------------


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field_bytes(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def field_varint(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def field_double(number: int, value: float) -> bytes:
    return varint(number << 3 | 1) + struct.pack("<d", value)


def field_float(number: int, value: float) -> bytes:
    return varint(number << 3 | 5) + struct.pack("<f", value)


def event(wall_time: float, step: int, *values: bytes) -> bytes:
    summary = b"".join(field_bytes(1, v) for v in values)
    return field_double(1, wall_time) + field_varint(2, step) + field_bytes(5, summary)


def scalars_metadata(plugin: str = "scalars") -> bytes:
    return field_bytes(9, field_bytes(1, field_bytes(1, plugin.encode())))


def tensor_value(tag: str, tensor: bytes, metadata: bytes = b"") -> bytes:
    return field_bytes(1, tag.encode()) + metadata + field_bytes(8, tensor)


def simple_value(tag: str, value: float) -> bytes:
    return field_bytes(1, tag.encode()) + field_float(2, value)


def tfrecord(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return (length + struct.pack("<I", masked_crc32c(length)) + data
            + struct.pack("<I", masked_crc32c(data)))


def write_events(folder: Path, events: list[bytes], name: str = "events.out.tfevents.1.host.1.0") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(b"".join(tfrecord(e) for e in events))
    return path


def metrics_by_tag(records: list) -> dict[str, list[Metric]]:
    series: dict[str, list[Metric]] = defaultdict(list)
    for record in records:
        if isinstance(record, Metric):
            series[record.key].append(record)
    return series


def the_run(records: list) -> Run:
    runs = [r for r in records if isinstance(r, Run)]
    assert len(runs) == 1
    return runs[0]


def tensorboard_truth(truth: dict) -> list[dict]:
    runs = [r for r in truth["runs"] if r["source"] == "tensorboard"]
    assert runs, "TRUTH.json has no tensorboard runs"
    return runs


# --- the corpus ---------------------------------------------------------------------------------


def test_crc32c_known_vector() -> None:
    assert crc32c(b"123456789") == 0xE3069283


def test_scalars_match_truth(corpus: Path, truth: dict) -> None:
    for expected in tensorboard_truth(truth):
        records, warnings = crawl_unit(TensorboardCrawler(), corpus, corpus / expected["dir"])
        assert warnings == []
        series = metrics_by_tag(records)
        assert set(series) == set(expected["scalars"])
        storage = json.loads(next(r.value for r in records
                                  if isinstance(r, Tag) and r.key == "tensorboard.scalar_storage"))
        for tag, facts in expected["scalars"].items():
            points = series[tag]
            values = [p.value for p in points]
            assert len(points) == facts["count"], tag
            assert points[0].step == facts["first_step"]
            assert points[-1].step == facts["last_step"]
            assert points[-1].value == facts["last_value"]
            assert (min(values), max(values)) == (facts["min"], facts["max"])
            assert all(p.timestamp is not None and p.timestamp.tzinfo for p in points)
            assert storage[tag] == facts["storage"]


def test_hparams_match_truth(corpus: Path, truth: dict) -> None:
    for expected in tensorboard_truth(truth):
        records, _ = crawl_unit(TensorboardCrawler(), corpus, corpus / expected["dir"])
        params = {p.key: p.value for p in records if isinstance(p, Param)}
        start = expected["hparams"].get("_hparams_/session_start_info", {})
        assert params == {k: to_text(v) for k, v in start.get("hparams", {}).items()}
        end = expected["hparams"].get("_hparams_/session_end_info")
        assert the_run(records).status == ({1: "FINISHED", 2: "FAILED"}.get(end["status"]) if end else None)


def test_run_identity_and_parent(corpus: Path, truth: dict) -> None:
    dirs = {r["dir"] for r in tensorboard_truth(truth)}
    for rel in dirs:
        parent = rel.rsplit("/", 1)[0]
        ctx = CrawlContext.for_root(corpus, corpus / rel)
        if parent in dirs:  # the core tells a unit which folder units contain it
            ctx.enclosing = (("tensorboard", corpus / parent),)
        records = list(TensorboardCrawler().crawl(ctx.unit, ctx))
        run = the_run(records)
        assert (run.run_id, run.source_run_id, run.dir) == (f"tensorboard:{rel}", rel, rel)
        assert run.start_time is not None and run.start_time <= run.end_time
        assert run.parent_run_id == (f"tensorboard:{parent}" if parent in dirs else None)


def test_public_readers_take_a_file(corpus: Path, truth: dict) -> None:
    expected = next(r for r in tensorboard_truth(truth) if r["hparams"])
    event_file = corpus / expected["event_files"][0]
    ctx = CrawlContext.for_root(corpus, event_file)
    metrics = list(read_scalars(event_file, ctx, "lightning:x"))
    assert {m.key for m in metrics} == set(expected["scalars"])
    assert all(m.run_id == "lightning:x" for m in metrics)
    params = list(read_hparams(event_file, ctx, "lightning:x"))
    assert {p.key for p in params} == set(expected["hparams"]["_hparams_/session_start_info"]["hparams"])


def test_claims_lose_lightning_log_dirs_by_priority() -> None:
    from mlcrawl.claims import ClaimMatcher
    from mlcrawl.crawlers.lightning import LightningCrawler

    matcher = ClaimMatcher([TensorboardCrawler(), LightningCrawler()], lambda *a: None)
    events = frozenset({"events.out.tfevents.1.host.1.0"})
    assert [c.name for c in matcher.for_folder("/x/runs/exp1", events)] == ["tensorboard"]
    assert [c.name for c in matcher.for_folder("/x/my-version", events | {"hparams.yaml"})] == ["lightning"]
    assert matcher.for_folder("/x/exp1", frozenset({"notes.txt"})) == []

def float_tensor(value: float) -> bytes:
    """DT_FLOAT, shape [], value in tensor_content (how tf.summary writes it)."""
    return field_varint(1, 1) + field_bytes(2, b"") + field_bytes(4, struct.pack("<f", value))


def double_tensor(value: float) -> bytes:
    """DT_DOUBLE, value in double_val."""
    return field_varint(1, 2) + field_bytes(6, struct.pack("<d", value))


def hparams_plugin(content: bytes) -> bytes:
    return field_bytes(9, field_bytes(1, field_bytes(1, b"hparams") + field_bytes(2, content)))


def test_tensor_scalars_with_metadata_on_first_event_only(tmp_path: Path) -> None:
    events = [field_double(1, 1000.0) + field_bytes(3, b"brain.Event:2")]
    for step in range(5):
        first = step == 0
        events.append(event(
            1000.0 + step, step,
            tensor_value("epoch_loss", float_tensor(1.0 / (step + 1)), scalars_metadata() if first else b""),
            tensor_value("epoch_lr", double_tensor(0.1 * step), scalars_metadata() if first else b""),
            tensor_value("notes", field_varint(1, 7) + field_bytes(8, b"hi"),
                         scalars_metadata("text") if first else b""),
        ))
    write_events(tmp_path / "logs" / "train", events)
    records, warnings = crawl_unit(TensorboardCrawler(), tmp_path, tmp_path / "logs" / "train")
    assert warnings == []
    series = metrics_by_tag(records)
    assert set(series) == {"epoch_loss", "epoch_lr"}
    assert [p.step for p in series["epoch_loss"]] == [0, 1, 2, 3, 4]
    assert [p.value for p in series["epoch_loss"]] == [struct.unpack("<f", struct.pack("<f", 1.0 / (s + 1)))[0]
                                                       for s in range(5)]
    assert [p.value for p in series["epoch_lr"]] == [0.1 * s for s in range(5)]
    assert series["epoch_lr"][-1].timestamp.timestamp() == 1004.0
    storage = next(r for r in records if isinstance(r, Tag) and r.key == "tensorboard.scalar_storage")
    assert json.loads(storage.value) == {"epoch_loss": "tensor", "epoch_lr": "tensor"}
    run = the_run(records)
    assert run.run_id == "tensorboard:logs/train"
    assert (run.start_time.timestamp(), run.end_time.timestamp()) == (1000.0, 1004.0)


def test_lightning_hp_metric_placeholder_ignored(tmp_path: Path) -> None:
    write_events(tmp_path / "run", [
        event(10.0, 0, simple_value("hp_metric", -1.0)),
        event(11.0, 5, simple_value("hp_metric", 0.75), simple_value("loss", -1.0)),
    ])
    records, _ = crawl_unit(TensorboardCrawler(), tmp_path, tmp_path / "run")
    series = metrics_by_tag(records)
    assert [(p.step, p.value) for p in series["hp_metric"]] == [(5, 0.75)]
    assert [p.value for p in series["loss"]] == [-1.0]


def test_hparams_session_start_and_end(tmp_path: Path) -> None:
    def entry(key: str, value: bytes) -> bytes:
        return field_bytes(1, field_bytes(1, key.encode()) + field_bytes(2, value))

    start = (entry("lr", field_double(2, 0.001)) + entry("opt", field_bytes(3, b"sgd"))
             + entry("nesterov", field_varint(4, 1)) + field_bytes(4, b"grp"))
    write_events(tmp_path / "run", [
        event(5.0, 0, field_bytes(1, b"_hparams_/session_start_info") + hparams_plugin(field_bytes(3, start))),
        event(6.0, 0, field_bytes(1, b"_hparams_/session_end_info") + hparams_plugin(field_bytes(4, field_varint(1, 2)))),
    ])
    records, _ = crawl_unit(TensorboardCrawler(), tmp_path, tmp_path / "run")
    assert {p.key: p.value for p in records if isinstance(p, Param)} == {
        "lr": "0.001", "opt": "sgd", "nesterov": "true"}
    run = the_run(records)
    assert (run.status, run.group) == ("FAILED", "grp")


# --- bad input ----------------------------------------------------------------------------------


@pytest.fixture
def event_copy(corpus: Path, truth: dict, tmp_path: Path) -> tuple[Path, dict]:
    """A copy of the corpus event folder with the most scalar points, and its truth."""
    expected = max(tensorboard_truth(truth), key=lambda r: sum(s["count"] for s in r["scalars"].values()))
    folder = tmp_path / "run"
    folder.mkdir()
    for name in expected["event_files"]:
        shutil.copy(corpus / name, folder)
    return folder, expected


def record_offsets(data: bytes) -> list[int]:
    offsets, pos = [], 0
    while pos + 12 <= len(data):
        offsets.append(pos)
        pos += 16 + struct.unpack_from("<Q", data, pos)[0]
    return offsets


def total_points(expected: dict) -> int:
    return sum(s["count"] for s in expected["scalars"].values())


def test_bad_data_crc_in_the_middle_skips_one_record(event_copy: tuple[Path, dict]) -> None:
    folder, expected = event_copy
    path = next(folder.iterdir())
    data = bytearray(path.read_bytes())
    offsets = record_offsets(bytes(data))
    middle = offsets[len(offsets) // 2]
    data[middle + 12 + 3] ^= 0xFF  # inside the payload, past the header
    path.write_bytes(bytes(data))
    records, warnings = crawl_unit(TensorboardCrawler(), folder.parent, folder)
    assert len(warnings) == 1 and "CRC" in warnings[0].message
    points = sum(len(v) for v in metrics_by_tag(records).values())
    assert total_points(expected) - points == 1  # torch writes one scalar per event


def test_bad_length_crc_resyncs_at_the_next_record(event_copy: tuple[Path, dict]) -> None:
    folder, expected = event_copy
    path = next(folder.iterdir())
    data = bytearray(path.read_bytes())
    offsets = record_offsets(bytes(data))
    middle = offsets[len(offsets) // 2]
    data[middle + 8] ^= 0xFF  # the stored length CRC
    path.write_bytes(bytes(data))
    records, warnings = crawl_unit(TensorboardCrawler(), folder.parent, folder)
    assert len(warnings) == 1 and "length CRC" in warnings[0].message
    assert str(offsets[len(offsets) // 2 + 1]) in warnings[0].message
    assert total_points(expected) - sum(len(v) for v in metrics_by_tag(records).values()) == 1


def test_truncated_last_record_is_silent(event_copy: tuple[Path, dict]) -> None:
    folder, expected = event_copy
    path = next(folder.iterdir())
    path.write_bytes(path.read_bytes()[:-5])
    records, warnings = crawl_unit(TensorboardCrawler(), folder.parent, folder)
    assert warnings == []
    assert total_points(expected) - sum(len(v) for v in metrics_by_tag(records).values()) == 1
    assert the_run(records).end_time is not None


def test_zero_byte_event_file_warns(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "events.out.tfevents.1.host.1.0").write_bytes(b"")
    records, warnings = crawl_unit(TensorboardCrawler(), tmp_path, tmp_path / "run")
    assert [w.error_type for w in warnings] == ["empty_file"]
    assert warnings[0].path == "run/events.out.tfevents.1.host.1.0"
    run = the_run(records)
    assert (run.run_id, run.start_time) == ("tensorboard:run", None)


def test_garbage_event_file_does_not_crash(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "events.out.tfevents.1.host.1.0").write_bytes(bytes(range(256)) * 40)
    records, warnings = crawl_unit(TensorboardCrawler(), tmp_path, folder)
    assert not any(isinstance(r, Metric) for r in records)
    assert warnings and all(w.error_type == "corrupt_record" for w in warnings)
