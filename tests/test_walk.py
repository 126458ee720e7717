"""The walk: ignores, .mlcrawlignore, symlink policy, odd names, unreadable folders."""

from __future__ import annotations

import os
import subprocess

from helpers import crawl, make_tree, rows

from mlcrawl.walk import DirEnter, FileEntry, SymlinkEntry, WalkProblem, WalkRules, walk


def files_of(root, rules=None, **kw):
    return [e.rel for e in walk(root, rules or WalkRules(**kw)) if isinstance(e, FileEntry)]


def test_every_subtree_is_one_contiguous_run_of_the_stream(tmp_path):
    # Folder fingerprints are digests of contiguous slices of the walk's stat columns.
    make_tree(tmp_path, {"a/x": "", "a.txt": "", "a-b/y": "", "b": "", "A": "", "a/deep/z": "", "a/w": ""})
    got = files_of(tmp_path)
    assert sorted(got) == ["A", "a-b/y", "a.txt", "a/deep/z", "a/w", "a/x", "b"] and got == files_of(tmp_path)
    under_a = [i for i, p in enumerate(got) if p.startswith("a/")]
    assert under_a == list(range(under_a[0], under_a[0] + 3))


def _nest(top, depth: int) -> None:
    """``depth`` folders ``d/d/...`` under ``top`` and a file at the bottom (relative to fds: PATH_MAX)."""
    os.makedirs(top)
    fd = os.open(top, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = child
        os.close(os.open("leaf.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    finally:
        os.close(fd)


def test_deep_trees_walk_without_recursion(tmp_path):
    # As deep as PATH_MAX (4096 bytes) lets an absolute path go: every level is walked.
    _nest(tmp_path / "deep", 1_900)
    files = files_of(tmp_path / "deep")
    assert len(files) == 1 and files[0].count("/") == 1_900
    # 10,000 levels, paths far past PATH_MAX: listed through folder fds, the leaf is found.
    try:
        _nest(tmp_path / "deeper", 10_000)
        events = list(walk(tmp_path / "deeper"))
        assert not [e for e in events if isinstance(e, WalkProblem)]
        [leaf] = [e for e in events if isinstance(e, FileEntry)]
        assert leaf.rel == "d/" * 10_000 + "leaf.txt" and leaf.stat.st_size == 0
    finally:
        # pytest's own cleanup (shutil.rmtree) recurses per level; GNU rm does not.
        subprocess.run(["rm", "-rf", str(tmp_path / "deep"), str(tmp_path / "deeper")], check=True)


def test_default_ignores_and_environments(tmp_path):
    make_tree(tmp_path, {
        ".git/HEAD": "", "__pycache__/m.pyc": "", "nb/.ipynb_checkpoints/a.ipynb": "", "node_modules/x.js": "",
        ".dvc/cache/ab/cdef": "", ".dvc/config": "", "myenv/pyvenv.cfg": "", "myenv/lib/x.py": "", "keep.py": "",
    })
    assert files_of(tmp_path) == [".dvc/config", "keep.py"]


def test_mlcrawlignore_in_any_folder_and_config_globs(tmp_path):
    make_tree(tmp_path, {
        "a/.mlcrawlignore": "*.tmp\n!keep.tmp\nscratch/\n", "a/x.tmp": "", "a/keep.tmp": "", "a/scratch/y": "",
        "a/b/z.tmp": "", "b/x.tmp": "", "b/data.csv": "", "b/big/huge.bin": "",
    })
    assert files_of(tmp_path, exclude=("big/",)) == ["a/.mlcrawlignore", "a/keep.tmp", "b/data.csv", "b/x.tmp"]
    assert files_of(tmp_path, include=("*.csv",)) == ["b/data.csv"]


def test_symlinks_recorded_not_followed(tmp_path):
    root = make_tree(tmp_path / "root", {"real/f.txt": "x"})
    outside = make_tree(tmp_path / "outside", {"secret.txt": "s"})
    (root / "link_in").symlink_to("real")
    (root / "link_out").symlink_to(outside)
    (root / "broken").symlink_to("nowhere")
    (root / "loop").symlink_to("loop")
    events = list(walk(root))
    links = {e.rel: e for e in events if isinstance(e, SymlinkEntry)}
    assert links["link_in"].resolves_inside and not links["link_in"].broken
    assert not links["link_out"].resolves_inside
    assert links["broken"].broken and links["loop"].broken
    problems = {e.rel: e.error_type for e in events if isinstance(e, WalkProblem)}
    assert problems == {"broken": "broken_symlink", "loop": "symlink_loop"}
    assert files_of(root) == ["real/f.txt"]


def test_following_symlinks_never_loops_nor_leaves_the_root(tmp_path):
    root = make_tree(tmp_path / "root", {"a/f.txt": "x"})
    outside = make_tree(tmp_path / "outside", {"secret.txt": "s"})
    (root / "a" / "up").symlink_to("..")
    (root / "out").symlink_to(outside)
    (root / "alias").symlink_to("a")
    got = files_of(root, follow_symlinks=True)
    assert got == ["a/f.txt", "alias/f.txt"]
    problems = [e for e in walk(root, WalkRules(follow_symlinks=True)) if isinstance(e, WalkProblem)]
    assert {p.error_type for p in problems} == {"symlink_loop"}


def test_non_utf8_name_is_recorded_with_escapes(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    with open(os.path.join(os.fsencode(root), b"caf\xe9.csv"), "wb") as f:
        f.write(b"a\n1\n")
    db = tmp_path / "c.duckdb"
    summary = crawl(root, db, crawlers=[])
    assert summary.files_seen == 1
    assert rows(db, "SELECT path, sha256 IS NOT NULL FROM files") == [("caf\\xe9.csv", True)]
    assert rows(db, "SELECT error_type, severity FROM errors") == [("non_utf8_name", "warning")]


def test_unlistable_folder_is_an_error_row_injected(tmp_path):
    make_tree(tmp_path, {"ok/a.txt": "", "locked/b.txt": ""})

    def scandir(path):
        if path.endswith("locked"):
            raise PermissionError(13, "Permission denied", path)
        return os.scandir(path)

    events = list(walk(tmp_path, scandir=scandir))
    assert [e.rel for e in events if isinstance(e, FileEntry)] == ["ok/a.txt"]
    assert [(e.rel, e.error_type) for e in events if isinstance(e, WalkProblem)] == [("locked", "PermissionError")]


def test_dir_enter_lists_names(tmp_path):
    make_tree(tmp_path, {"run/.hydra/config.yaml": "", "run/metrics.json": ""})
    enters = {e.rel: e.names for e in walk(tmp_path) if isinstance(e, DirEnter)}
    assert enters["run"] == frozenset({".hydra", "metrics.json"})


def test_unreadable_file_and_folder_injected(tmp_path, monkeypatch):
    """Root reads through chmod 000, so the permission failures are injected at the OS calls."""
    import mlcrawl.hashing as hashing

    root = make_tree(tmp_path / "root", {"ok.txt": "fine", "secret.txt": "no", "closed/inner.txt": "no"})
    real_scandir, real_open = os.scandir, hashing.open_binary

    def scandir(path):
        if os.fspath(path).endswith("closed"):
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    def fake_open(path, *args, **kw):
        if os.fspath(path).endswith("secret.txt"):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *args, **kw)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(hashing, "open_binary", fake_open)
    db = tmp_path / "c.duckdb"
    summary = crawl(root, db, crawlers=[])
    monkeypatch.undo()
    assert summary.status == "partial" and summary.errors == 2
    assert dict(rows(db, "SELECT path, error_type FROM errors")) == {"secret.txt": "PermissionError", "closed": "PermissionError"}
    assert rows(db, "SELECT path, sha256 IS NULL FROM files ORDER BY path") == [("ok.txt", False), ("secret.txt", True)]
    # the unreadable file is retried next time and succeeds once readable
    assert crawl(root, db, crawlers=[]).files_new == 1
    assert rows(db, "SELECT count(*) FROM files WHERE sha256 IS NULL")[0][0] == 0
