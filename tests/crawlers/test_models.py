"""Models crawler: safetensors, ONNX, torch zips, skops and pickles, read without loading."""

from __future__ import annotations

import json
import math
import pickle
import struct
import zipfile
import zlib
from collections import OrderedDict
from pathlib import Path

import pytest
from conftest import crawl_unit
from mlcrawl.crawlers._pickle_scan import scan_pickle
from mlcrawl.crawlers.models import PICKLE_WARNING, ModelsCrawler

from mlcrawl.records import Model

CRAWLER = ModelsCrawler()
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"


def model_of(root: Path, unit: Path, **options) -> tuple[Model, list]:
    records, warnings = crawl_unit(CRAWLER, root, unit, **options)
    assert len(records) == 1 and isinstance(records[0], Model)
    return records[0], warnings


def corpus_files(truth: dict, *suffixes: str) -> list[str]:
    found = sorted(p for p in truth["files"] if p.endswith(suffixes))
    assert found, f"no {suffixes} file in the corpus"
    return found


def test_safetensors_match_their_header_parsed_here(corpus: Path, truth: dict) -> None:
    for rel in corpus_files(truth, ".safetensors"):
        raw = (corpus / rel).read_bytes()
        (length,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8 : 8 + length])
        meta = header.pop("__metadata__", None)
        model, warnings = model_of(corpus, corpus / rel)
        assert not warnings
        assert (model.path, model.format, model.sha256) == (rel, "safetensors", truth["files"][rel]["sha256"])
        assert model.tensor_count == len(header)
        assert model.parameter_count == sum(math.prod(t["shape"]) for t in header.values())
        assert model.dtypes == sorted({t["dtype"] for t in header.values()})
        assert model.metadata == meta
        # The data section is exactly what the offsets describe: the header was read right.
        assert 8 + length + max(t["data_offsets"][1] for t in header.values()) == truth["files"][rel]["size"]


def test_torch_zips_are_listed_like_zipfile_sees_them(corpus: Path, truth: dict) -> None:
    for rel in corpus_files(truth, ".pt", ".pth", ".ckpt", ".bin"):
        with zipfile.ZipFile(corpus / rel) as archive:
            infos = archive.infolist()
            root = next(i.filename for i in infos if i.filename.endswith("/data.pkl"))[: -len("data.pkl")]
            byteorder = archive.read(f"{root}byteorder").decode()
        model, _ = model_of(corpus, corpus / rel)
        assert (model.format, model.sha256) == ("pytorch", truth["files"][rel]["sha256"])
        meta = model.metadata
        assert meta["entries"] == len(infos)
        assert meta["total_size"] == sum(i.file_size for i in infos)
        assert meta["has_data_pkl"] and meta["byteorder"] == byteorder
        assert meta["storages"] == sum(1 for i in infos if i.filename.startswith(f"{root}data/"))
        assert meta["pickle_scan_complete"]
        assert model.tensor_count == meta["storages"]  # torch.save: one storage per tensor here
        # Every tensor owns its whole storage, so its elements fill the data/<n> entries exactly.
        itemsize = {"float32": 4, "float64": 8, "int64": 8, "uint8": 1, None: 0}
        dtype = model.dtypes[0] if model.dtypes else None
        assert model.dtypes in (None, [dtype])
        assert model.parameter_count * itemsize[dtype] == meta["storage_bytes"]


def test_classes_named_in_pickles_without_unpickling(corpus: Path, truth: dict) -> None:
    # Lightning checkpoints and torch state dicts rebuild tensors; HF's training_args.bin
    # pickles a TrainingArguments; joblib files hold sklearn estimators.
    for rel in corpus_files(truth, ".ckpt", "mlp_lr0.1.pt"):
        model, _ = model_of(corpus, corpus / rel)
        assert "torch._utils._rebuild_tensor_v2" in model.metadata["globals"]
        assert model.dtypes == ["float32"] and model.warning is None
    for rel in corpus_files(truth, "training_args.bin"):
        model, _ = model_of(corpus, corpus / rel)
        assert model.metadata["globals"][0] == "transformers.training_args.TrainingArguments"
        assert "transformers.training_args.TrainingArguments" in model.warning
    for rel in corpus_files(truth, ".joblib"):
        model, _ = model_of(corpus, corpus / rel)
        assert model.format == "joblib" and model.warning == PICKLE_WARNING
        assert model.metadata["pickle_protocol"] == (corpus / rel).read_bytes()[1]
        assert model.metadata["globals"][0].startswith("sklearn.")


def test_skops_archive_lists_entries_and_classes(corpus: Path, truth: dict) -> None:
    for rel in corpus_files(truth, ".skops"):
        with zipfile.ZipFile(corpus / rel) as archive:
            names = archive.namelist()
            schema = json.loads(archive.read("schema.json"))
        model, _ = model_of(corpus, corpus / rel)
        assert model.format == "skops" and model.metadata["entries"] == len(names)
        assert model.metadata["class"] == f"{schema['__module__']}.{schema['__class__']}"
        assert model.metadata["class"] in model.metadata["classes"]


def test_onnx_fixture_matches_what_the_onnx_package_reported() -> None:
    expected = json.loads((FIXTURES / "tiny.onnx.expected.json").read_text())
    model, warnings = model_of(FIXTURES, FIXTURES / "tiny.onnx")
    assert not warnings and model.format == "onnx"
    assert model.inputs == expected["inputs"]  # W is an initializer, listed as input: left out
    assert model.outputs == expected["outputs"]
    assert model.opset == expected["opset"][""]
    assert model.metadata["opset_imports"] == expected["opset"]
    assert (model.tensor_count, model.parameter_count, model.dtypes) == (
        expected["tensor_count"],
        expected["parameter_count"],
        expected["dtypes"],
    )
    for key in (
        "ir_version",
        "producer_name",
        "producer_version",
        "model_version",
        "graph_name",
        "node_count",
        "metadata_props",
    ):
        assert model.metadata[key] == expected[key], key


def _unicode(text: str) -> bytes:
    return b"X" + struct.pack("<I", len(text)) + text.encode()


def test_tensor_shapes_and_dtypes_from_hand_written_torch_opcodes() -> None:
    # The opcodes torch.save writes for {"w": half tensor (2, 3), "b": same storage class via memo}.
    def tensor(rebuild: bytes, storage_class: bytes, key: str, shape: tuple[int, ...]) -> bytes:
        pid = b"(" + _unicode("storage") + storage_class + _unicode(key) + _unicode("cpu") + b"K\x06t"
        dims = b"(" + b"".join(b"K" + bytes([d]) for d in shape) + b"t"
        return rebuild + b"(" + pid + b"QK\x00" + dims + dims + b"\x89}tR"

    data = (
        b"\x80\x02ccollections\nOrderedDict\n)R("
        + _unicode("w")
        + tensor(b"ctorch._utils\n_rebuild_tensor_v2\nq\x01", b"ctorch\nHalfStorage\nq\x02", "0", (2, 3))
        + _unicode("b")
        + tensor(b"h\x01", b"h\x02", "1", ())
        + b"u."
    )
    scan = scan_pickle(data)
    assert scan.complete and scan.stopped_at is None
    assert scan.tensors == [("float16", 6), ("float16", 1)] and scan.storages == 2
    assert scan.globals == ["collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch.HalfStorage"]


def test_plain_pickle_protocol_and_globals(tmp_path: Path) -> None:
    unit = tmp_path / "state.pkl"
    unit.write_bytes(pickle.dumps({"d": OrderedDict(a=1), "p": Path("x")}, protocol=2))
    model, _ = model_of(tmp_path, unit)
    assert model.format == "pickle" and model.warning == PICKLE_WARNING
    assert model.metadata["pickle_protocol"] == 2
    assert {"collections.OrderedDict", "pathlib.PosixPath"} <= set(model.metadata["globals"])


def test_compressed_joblib_prefix_is_scanned_within_bounds(tmp_path: Path) -> None:
    unit = tmp_path / "m.joblib"
    unit.write_bytes(zlib.compress(pickle.dumps(OrderedDict(w=list(range(100_000))), protocol=4)))
    model, _ = model_of(tmp_path, unit, scan_bytes=4096)
    assert model.metadata["compression"] == "zlib"
    assert model.metadata["globals"] == ["collections.OrderedDict"]
    assert model.metadata["pickle_scan_complete"] is False  # 4 KiB of a 300 KB pickle


def test_legacy_torch_pickle_is_opaque_with_a_warning(tmp_path: Path) -> None:
    unit = tmp_path / "old.pth"
    # The legacy torch layout: magic number, protocol, sys_info, then the object, all pickles.
    unit.write_bytes(
        b"".join(pickle.dumps(x, protocol=2) for x in (0x1950A86A20F9469CFC6C, 1001, {}))
        + pickle.dumps(OrderedDict(), protocol=2)
        + b"\x00raw storage bytes"
    )
    model, _ = model_of(tmp_path, unit)
    assert model.format == "pytorch-legacy" and model.warning == PICKLE_WARNING
    assert model.metadata["globals"] == ["collections.OrderedDict"]


def test_absurd_safetensors_header_length_raises(tmp_path: Path) -> None:
    unit = tmp_path / "bad.safetensors"
    unit.write_bytes(struct.pack("<Q", 2**62) + b"{}")
    with pytest.raises(ValueError, match=r"bad.safetensors: absurd safetensors header length"):
        model_of(tmp_path, unit)
    unit.write_bytes(struct.pack("<Q", 50) + b'{"a": 1}')
    with pytest.raises(ValueError, match="absurd"):
        model_of(tmp_path, unit)


def test_malformed_safetensors_headers_raise(tmp_path: Path) -> None:
    cases = {
        "short.safetensors": b"\x01\x02",
        "notjson.safetensors": struct.pack("<Q", 4) + b"{{{{",
        "list.safetensors": struct.pack("<Q", 2) + b"[]",
        "entry.safetensors": struct.pack("<Q", 20) + b'{"w": {"dtype": 1}} ',
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match=name):
            model_of(tmp_path, tmp_path / name)


def test_truncated_safetensors_data_warns(tmp_path: Path) -> None:
    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}).encode()
    unit = tmp_path / "cut.safetensors"
    unit.write_bytes(struct.pack("<Q", len(header)) + header + b"\x00" * 10)
    model, warnings = model_of(tmp_path, unit)
    assert (model.tensor_count, model.parameter_count) == (1, 6)
    assert len(warnings) == 1 and "truncated" in warnings[0].message


def test_truncated_zip_checkpoint_raises(corpus: Path, truth: dict, tmp_path: Path) -> None:
    rel = corpus_files(truth, ".ckpt")[0]
    data = (corpus / rel).read_bytes()
    unit = tmp_path / "cut.ckpt"
    unit.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.ckpt: truncated or corrupt zip archive"):
        model_of(tmp_path, unit)


def test_not_onnx_garbage_raises(tmp_path: Path) -> None:
    cases = {
        "text.onnx": b"hello world, this is not a model\n" * 10,
        "zeros.onnx": b"\x00" * 100,
        "cut.onnx": (FIXTURES / "tiny.onnx").read_bytes()[:200],
        "empty.onnx": b"",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match=f"{name}: not a readable ONNX model"):
            model_of(tmp_path, tmp_path / name)


def test_unknown_bin_is_skipped_but_unknown_pt_raises(tmp_path: Path) -> None:
    (tmp_path / "vocab.bin").write_bytes(b"\x01\x02\x03\x04")
    assert crawl_unit(CRAWLER, tmp_path, tmp_path / "vocab.bin") == ([], [])
    (tmp_path / "junk.pt").write_bytes(b"GGUF....")
    with pytest.raises(ValueError, match="junk.pt: neither a zip archive nor a pickle"):
        model_of(tmp_path, tmp_path / "junk.pt")


def test_match() -> None:
    for name in (
        "m.safetensors",
        "m.onnx",
        "m.pt",
        "m.PTH",
        "e.ckpt",
        "training_args.bin",
        "m.pkl",
        "m.joblib",
        "m.skops",
    ):
        assert CRAWLER.match(Path(name), False), name
    assert not CRAWLER.match(Path("m.h5"), False)
    assert not CRAWLER.match(Path("m.onnx"), True)
