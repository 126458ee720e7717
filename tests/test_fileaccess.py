"""The one guarded read path: special files, symlinks out of the root, bounded reads."""

from __future__ import annotations

import os
import tracemalloc

import pytest

from mlcrawl.api import CrawlContext, TooLarge, UnsafeFile
from mlcrawl.fileaccess import FilePolicy, read_bounded


def test_a_fifo_with_a_tracked_name_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "meta.yaml")
    ctx = CrawlContext.for_root(tmp_path, tmp_path)
    with pytest.raises(UnsafeFile, match="named pipe"):
        ctx.read_bytes(tmp_path / "meta.yaml")


def test_a_symlink_out_of_the_root_is_never_read(tmp_path):
    outside = tmp_path / "home" / "credentials"
    outside.parent.mkdir()
    outside.write_text("aws_secret=hunter2")
    root = tmp_path / "root"
    root.mkdir()
    (root / "params.yaml").symlink_to(outside)
    for follow in (False, True):
        ctx = CrawlContext.for_root(root, root)
        ctx.follow_symlinks = follow
        with pytest.raises(UnsafeFile):
            ctx.read_text(root / "params.yaml")


def test_a_symlink_inside_the_root_is_read_only_when_following(tmp_path):
    (tmp_path / "real.json").write_text("{}")
    (tmp_path / "link.json").symlink_to(tmp_path / "real.json")
    ctx = CrawlContext.for_root(tmp_path, tmp_path)
    with pytest.raises(UnsafeFile, match="not followed"):
        ctx.read_bytes(tmp_path / "link.json")
    ctx.follow_symlinks = True
    assert ctx.read_json(tmp_path / "link.json") == {}


def test_a_device_is_refused(tmp_path):
    (tmp_path / "metrics.json").symlink_to("/dev/zero")
    with pytest.raises(UnsafeFile):
        read_bounded(str(tmp_path / "metrics.json"), policy=FilePolicy(str(tmp_path), follow_symlinks=True))


def test_reads_are_bounded_and_a_small_read_allocates_little(tmp_path):
    (tmp_path / "big.txt").write_bytes(b"x" * 5000)
    with pytest.raises(TooLarge):
        read_bounded(str(tmp_path / "big.txt"), limit=4096)
    (tmp_path / "small.txt").write_text("a: 1\n")
    tracemalloc.start()
    assert read_bounded(str(tmp_path / "small.txt")) == b"a: 1\n"
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1 << 20  # not the 256 MiB default limit
