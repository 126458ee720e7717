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
