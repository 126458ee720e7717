"""Git LFS pointers: files written by `git lfs pointer` (git-lfs 3.3.0; tests/fixtures/lfs, with
the real files' sha256 and size in TRUTH.json), and files that only look like one."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from mlcrawl.lfs import MAX_POINTER_SIZE, LfsPointer, parse_pointer

LFS = Path(__file__).resolve().parent / "fixtures" / "lfs"


def test_pointers_made_by_git_lfs_give_the_real_size_and_oid():
    truth = json.loads((LFS / "TRUTH.json").read_text())
    for name, real in truth.items():
        pointer = parse_pointer((LFS / name).read_bytes())
        assert pointer == LfsPointer(real["oid"], real["size"])
        assert pointer.facts() == {"lfs_pointer": {"oid": f"sha256:{real['oid']}", "size": real["size"]}}


@pytest.mark.skipif(shutil.which("git-lfs") is None, reason="needs git-lfs to write pointers")
def test_pointers_written_now_by_git_lfs(tmp_path):
    import hashlib

    for size in (1, 5000):  # an empty file's pointer is an empty file: nothing to recognise
        real = tmp_path / f"w{size}.bin"
        real.write_bytes(bytes(range(256)) * (size // 256) + b"x" * (size % 256))
        out = subprocess.run(["git", "lfs", "pointer", f"--file={real}"], capture_output=True, check=True).stdout
        assert parse_pointer(out) == LfsPointer(hashlib.sha256(real.read_bytes()).hexdigest(), size)


def test_extensions_and_the_old_version_url():
    oid = "a" * 64
    text = (f"version https://hawser.github.com/spec/v1\next-0-foo sha256:{'b' * 64}\n"
            f"oid sha256:{oid}\nsize 12\n").encode()
    assert parse_pointer(text) == LfsPointer(oid, 12, (("foo", "b" * 64),))


@pytest.mark.parametrize("data", [
    b"",
    b"version https://git-lfs.github.com/spec/v1\n",  # no oid, no size
    b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 3\n",  # short oid
    b"version https://git-lfs.github.com/spec/v1\noid md5:" + b"a" * 64 + b"\nsize 3\n",
    b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"a" * 64 + b"\nsize -3\n",
    b"version https://example.org/spec/v9\noid sha256:" + b"a" * 64 + b"\nsize 3\n",
    b"oid sha256:" + b"a" * 64 + b"\nversion https://git-lfs.github.com/spec/v1\nsize 3\n",  # version not first
    b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"a" * 64 + b"\nsize 3\n" + b"#" * MAX_POINTER_SIZE,
    b"\x80\x02}q\x00.",  # a pickle
])
def test_look_alikes_are_not_pointers(data):
    assert parse_pointer(data) is None


def test_a_crawl_records_pointers_by_content_and_no_reader_calls_them_corrupt(tmp_path):
    from helpers import crawl, rows

    truth = json.loads((LFS / "TRUTH.json").read_text())
    root = tmp_path / "repo"
    (root / "models").mkdir(parents=True)
    (root / "data").mkdir()
    shutil.copy(LFS / "model.pt", root / "models" / "model.pt")
    shutil.copy(LFS / "data.csv", root / "data" / "train.csv")
    # The same pointer under a name whose reader checks a binary header.
    shutil.copy(LFS / "model.pt", root / "models" / "weights.safetensors")
    (root / "data" / "real.csv").write_text("a,b\n1,2\n")
    db = tmp_path / "c.duckdb"
    crawl(root, db)
    got = dict(rows(db, "select path, lfs_pointer from files where lfs_pointer is not null"))
    assert {path: json.loads(value) for path, value in got.items()} == {
        "models/model.pt": {"oid": f"sha256:{truth['model.pt']['oid']}", "size": truth["model.pt"]["size"]},
        "models/weights.safetensors": {"oid": f"sha256:{truth['model.pt']['oid']}", "size": truth["model.pt"]["size"]},
        "data/train.csv": {"oid": f"sha256:{truth['data.csv']['oid']}", "size": truth["data.csv"]["size"]},
    }
    assert dict(rows(db, "select path, kind from files where lfs_pointer is not null")) == {
        "models/model.pt": "model", "models/weights.safetensors": "model", "data/train.csv": "dataset"}
    assert rows(db, "select path, message from errors") == []
    assert rows(db, "select path from models") == []
    assert rows(db, "select path from dataset_schemas") == [("data/real.csv",)]

    crawl(root, db)  # unchanged: nothing asked again, nothing reported
    assert rows(db, "select count(*) from errors") == [(0,)]

    (root / "data" / "train.csv").write_text("x,y\n1,2\n3,4\n")  # git lfs pull: the real content
    crawl(root, db)
    assert rows(db, "select lfs_pointer from files where path = 'data/train.csv'") == [(None,)]
    assert rows(db, "select row_count from dataset_schemas where path = 'data/train.csv'") == [(2,)]
