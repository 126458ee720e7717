"""Hypothesis strategies for crawled bytes: real inputs mutated, and documents built from scratch.

Seeds are real files: the test fixtures, the real-tool corpus beside the project when present,
and the hostile suite's minimal shapes (valid files of every format, always available).  The
same strategies drive the CI fuzz tests (few examples) and ``bench/fuzz.py`` (many).
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from functools import cache
from pathlib import Path

import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from hostile.shapes import SHAPES

TESTS = Path(__file__).resolve().parents[1]
CORPUS = TESTS.parents[1] / "shared" / "corpus"
MAX_SEED_BYTES = 256 << 10
SEEDS_PER_KIND = 12

#: Examples per property: small in CI; bench/fuzz.py raises it through the environment.
EXAMPLES = int(os.environ.get("MLCRAWL_FUZZ_EXAMPLES", "12"))

settings.register_profile(
    "mlcrawl", max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
    derandomize=os.environ.get("MLCRAWL_FUZZ_RANDOM") != "1",
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
settings.load_profile("mlcrawl")


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


#: Byte strings that hit parsers' edges: huge lengths, NaN, YAML anchors and tags, BOMs, magics.
INTERESTING = (
    b"\xff" * 8, b"\x00" * 8, _varint((1 << 63) - 1), _varint(1 << 64), struct.pack("<Q", 1 << 62),
    struct.pack("<I", 0xFFFFFFFF), b"NaN", b"-Infinity", b"1e999", b"-0", b"&a [*a, *a]", b"*a", b"<<: *a",
    b"!!python/object/apply:os.system", b"!!binary", b'"\\ud800"', b"\xef\xbb\xbf", b"\xed\xa0\x80", b"\x80\x02",
    b"PK\x03\x04", b"PK\x05\x06", b"PAR1", b"{", b"[" * 64, b"%YAML 1.1\n", b"---\n", b"\r\n", b"\t", b"\\",
)
_PUNCTUATION = b'{}[]":,\n -&*!%|>\'#\x00\xff'


@st.composite
def mutated(draw, seeds: tuple[bytes, ...]) -> bytes:
    """A seed with up to eight edits: bit flips, inserts, deletes, cuts, repeats, edge values."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 8))):
        op = draw(st.integers(0, 6))
        pos = draw(st.integers(0, len(data)))
        if op == 0 and data:
            data[min(pos, len(data) - 1)] ^= 1 << draw(st.integers(0, 7))
        elif op == 1:
            data[pos:pos] = draw(st.binary(max_size=16))
        elif op == 2:
            del data[pos:pos + draw(st.integers(1, 64))]
        elif op == 3:
            del data[pos:]
        elif op == 4:
            data[pos:pos] = draw(st.sampled_from(INTERESTING))
        elif op == 5:
            chunk = bytes(data[pos:pos + draw(st.integers(1, 64))])
            data[pos:pos] = chunk * draw(st.integers(1, 16))
        elif data:
            data[min(pos, len(data) - 1)] = draw(st.sampled_from(_PUNCTUATION))
    return bytes(data)


_SCALARS = (st.none() | st.booleans() | st.integers(-(1 << 70), 1 << 70) | st.floats(allow_nan=True)
            | st.text(max_size=20))
values = st.recursive(_SCALARS, lambda children: st.lists(children, max_size=5)
                      | st.dictionaries(st.text(max_size=12), children, max_size=6), max_leaves=40)


def json_documents() -> st.SearchStrategy[bytes]:
    """Any JSON value Python writes (NaN and Infinity included)."""
    return values.map(lambda v: json.dumps(v).encode())


def yaml_documents() -> st.SearchStrategy[bytes]:
    """Any YAML the safe dumper writes from JSON-like values."""
    return values.map(lambda v: yaml.safe_dump(v, allow_unicode=True).encode("utf-8", "surrogatepass"))


def inputs(*names: str, structured: st.SearchStrategy[bytes] | None = None) -> st.SearchStrategy[bytes]:
    """Mutated seeds of files named like ``names`` (globs), random bytes, and ``structured`` documents."""
    found = seeds(names)
    parts = [mutated(found), st.binary(max_size=2048)]
    if structured is not None:
        parts.append(structured)
    return st.one_of(*parts)


@cache
def seeds(names: tuple[str, ...]) -> tuple[bytes, ...]:
    """Contents of up to SEEDS_PER_KIND real files per name glob, and of the shapes' files."""
    from fnmatch import fnmatch

    found: list[bytes] = []
    for pattern in names:
        matched = []
        for base in (TESTS / "fixtures", CORPUS):
            if base.is_dir():
                matched.extend(p for p in sorted(base.rglob(pattern)) if p.is_file() and p.stat().st_size <= MAX_SEED_BYTES)
        found.extend(p.read_bytes() for p in matched[:SEEDS_PER_KIND])
        for files in _shape_files():
            found.extend(data for rel, data in files.items() if fnmatch(rel.rsplit("/", 1)[-1], pattern))
    return tuple(dict.fromkeys(found)) or (b"",)


@cache
def _shape_files() -> tuple[dict[str, bytes], ...]:
    with tempfile.TemporaryDirectory() as scratch:
        return tuple(builder("plain", 1.5, "", Path(scratch)).files for builder in SHAPES.values())
