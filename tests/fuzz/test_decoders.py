"""The pure decoders under the crawlers, fed random and mutated bytes directly: each returns or
raises its own documented error, never anything else, and never takes long."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import yaml
from hypothesis import given
from hypothesis import strategies as st

from mlcrawl import parsing
from mlcrawl.crawler import CrawlContext
from mlcrawl.crawlers import _protowire
from mlcrawl.crawlers._codeanalysis import CodeAnalyzer, mask_ipython
from mlcrawl.crawlers._dvc_expand import Interpolator, expand_stages
from mlcrawl.crawlers._formats import tfevents, torchckpt
from mlcrawl.crawlers._onnx import OnnxFormatError, read_onnx
from mlcrawl.crawlers._pickle_scan import scan_pickle
from mlcrawl.validate import validate

from .contract import check
from .strategies import inputs, json_documents, mutated, seeds, values, yaml_documents


@given(inputs("*.onnx", "events.out.tfevents.*"))
def test_protowire_fields(data: bytes) -> None:
    def walk():
        for number, wire, value in _protowire.iter_fields(data):
            assert number >= 0 and wire in (0, 1, 2, 5)
            if wire == 2:  # nested messages are read the same way
                list(_protowire.iter_fields(value))
    check(walk, _protowire.WireError)


@given(inputs("*.onnx"))
def test_onnx_model(data: bytes) -> None:
    check(lambda: read_onnx(io.BytesIO(data), len(data)), OnnxFormatError)


@given(inputs("*.pkl", "*.joblib", "data.pkl"))
def test_pickle_scan_never_raises(data: bytes) -> None:
    scan = check(lambda: scan_pickle(data))
    assert scan is not None and scan.pickles >= 0


@given(st.one_of(inputs("*.pt", "*.ckpt"), mutated(seeds(("*.pt",)))))
def test_torch_checkpoint(data: bytes) -> None:
    # CheckpointError is a ValueError; zipfile and pickle framing raise their own ValueErrors.
    check(lambda: torchckpt.read_checkpoint(io.BytesIO(data)), ValueError, EOFError)


@given(inputs("events.out.tfevents.*"))
def test_tfevents_records_and_events(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.out.tfevents.1"
        ctx = CrawlContext.for_root(tmp, path)

        def decode():
            for record in tfevents.iter_tfrecords(data, ctx, path):
                assert record.offset >= 0
                try:
                    tfevents.decode_event(memoryview(record.data))
                except _protowire.WireError:
                    pass
        check(decode)
        for warning in ctx.warnings:
            validate(warning, "tensorboard")


@given(st.one_of(yaml_documents(), mutated(seeds(("*.yaml", "*.yml", "dvc.lock"))), st.binary(max_size=512)))
def test_yaml_loader(data: bytes) -> None:
    document = check(lambda: parsing.load_yaml(data), ValueError, yaml.YAMLError)
    # Whatever loads flattens and converts without recursion or surprises.
    list(parsing.flatten(document))
    parsing.to_text(document)


@given(st.one_of(json_documents(), mutated(seeds(("*.json", "*.ipynb"))), st.binary(max_size=512)))
def test_json_loader(data: bytes) -> None:
    document = check(lambda: parsing.load_json(data), ValueError)
    list(parsing.flatten(document))
    parsing.to_text(document)


@given(values, values)
def test_dvc_interpolation(params, stages) -> None:
    interp = Interpolator(params if isinstance(params, dict) else {"p": params})
    if isinstance(stages, dict):
        check(lambda: list(expand_stages(stages, interp)), ValueError, KeyError)


@given(st.one_of(st.text(max_size=400), mutated(seeds(("*.py",))).map(lambda b: b.decode("utf-8", "replace"))))
def test_code_analysis(source: str) -> None:
    analyzer = CodeAnalyzer(file_path="/project/scripts/train.py")
    check(lambda: analyzer.add_source(source))
    check(lambda: mask_ipython(source))
    for problem in analyzer.facts.problems:
        assert isinstance(problem.message, str)
