"""gitinfo against real repositories built with the git binary (results compared with rev-parse)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mlcrawl.gitinfo import GitCache, GitInfo, annotate_runs, read_git_info, strip_credentials
from mlcrawl.records import Param, Run, Tag

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git binary to build repos")

ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.org",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.org",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=ENV, check=True, capture_output=True, text=True
    ).stdout.strip()


def head_of(info: GitInfo | None) -> tuple | None:
    return None if info is None else (info.worktree, info.commit, info.branch)


def make_repo(path: Path, commits: int = 2) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    for n in range(commits):
        (path / "runs" / "exp1").mkdir(parents=True, exist_ok=True)
        (path / "runs" / "exp1" / f"f{n}.txt").write_text(str(n))
        git(path, "add", ".")
        git(path, "commit", "-q", "-m", f"c{n}")
    return path


def test_loose_branch_ref(tmp_path):
    repo = make_repo(tmp_path / "repo")
    info = read_git_info(repo / "runs" / "exp1" / "f0.txt")
    assert head_of(info) == (repo, git(repo, "rev-parse", "HEAD"), "main")


def test_packed_refs_after_pack_refs(tmp_path):
    repo = make_repo(tmp_path / "repo")
    git(repo, "branch", "other", "HEAD~1")
    git(repo, "tag", "-a", "v1", "-m", "annotated")  # adds a peeled "^" line to packed-refs
    git(repo, "pack-refs", "--all")
    assert not (repo / ".git" / "refs" / "heads" / "main").exists()
    assert read_git_info(repo / "runs").commit == git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "other")
    assert head_of(read_git_info(repo)) == (repo, git(repo, "rev-parse", "HEAD"), "other")


def test_detached_head(tmp_path):
    repo = make_repo(tmp_path / "repo")
    git(repo, "checkout", "-q", "--detach", "HEAD~1")
    assert head_of(read_git_info(repo / "runs" / "exp1")) == (repo, git(repo, "rev-parse", "HEAD"), None)


def test_linked_worktree_reads_its_own_head_and_the_shared_refs(tmp_path):
    repo = make_repo(tmp_path / "repo")
    git(repo, "worktree", "add", "-q", "-b", "feature", str(tmp_path / "wt"), "HEAD~1")
    assert (tmp_path / "wt" / ".git").is_file()
    info = read_git_info(tmp_path / "wt" / "runs" / "exp1")
    assert head_of(info) == (tmp_path / "wt", git(tmp_path / "wt", "rev-parse", "HEAD"), "feature")
    git(repo, "pack-refs", "--all")
    assert read_git_info(tmp_path / "wt").commit == git(tmp_path / "wt", "rev-parse", "HEAD")


def test_git_file_with_a_relative_gitdir(tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / ".git").rename(tmp_path / "store.git")
    (repo / ".git").write_text("gitdir: ../store.git\n")
    assert read_git_info(repo / "runs").commit == git(repo, "rev-parse", "HEAD")


def test_unborn_branch_has_no_commit(tmp_path):
    repo = make_repo(tmp_path / "repo", commits=0)
    assert head_of(read_git_info(repo)) == (repo, None, "main")


def test_outside_any_work_tree_is_none(tmp_path):
    (tmp_path / "plain").mkdir()
    probe = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"],
        cwd=tmp_path / "plain",
        env=ENV,
        capture_output=True,
        text=True,
    )
    if probe.returncode == 0:
        pytest.skip(f"tmp_path lies inside the work tree {probe.stdout.strip()}")
    assert read_git_info(tmp_path / "plain") is None


def test_nearest_work_tree_wins_for_nested_repositories(tmp_path):
    outer = make_repo(tmp_path / "outer")
    inner = make_repo(outer / "vendor" / "inner", commits=1)
    assert read_git_info(inner / "runs").worktree == inner
    assert read_git_info(inner / "runs").commit == git(inner, "rev-parse", "HEAD")
    assert read_git_info(outer / "runs").worktree == outer


def test_cache_reads_each_work_tree_once(tmp_path):
    repo = make_repo(tmp_path / "repo")
    cache = GitCache()
    first = read_git_info(repo / "runs" / "exp1", cache)
    (repo / ".git" / "HEAD").write_text("garbage\n")  # a cached answer must not re-read HEAD
    assert read_git_info(repo / "runs", cache) is first
    assert set(cache.info_of) == {repo}
    assert read_git_info(repo / "runs", GitCache()).commit is None  # corrupt HEAD: no commit, no error


def test_dirty_means_a_tracked_change_staged_or_not_like_gitpython(tmp_path):
    repo = make_repo(tmp_path / "repo")
    assert read_git_info(repo).dirty is False
    (repo / "untracked.txt").write_text("new")  # untracked files do not make it dirty
    assert read_git_info(repo).dirty is False
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == ""
    tracked = repo / "runs" / "exp1" / "f0.txt"
    tracked.write_text("changed")
    assert git(repo, "status", "--porcelain", "--untracked-files=no") != ""
    assert read_git_info(repo).dirty is True
    git(repo, "add", str(tracked))  # staged only: the work tree equals the index
    assert read_git_info(repo).dirty is True
    git(repo, "commit", "-q", "-m", "c")
    assert read_git_info(repo).dirty is False
    git(repo, "rm", "-q", str(tracked))
    assert read_git_info(repo).dirty is True


def test_dirty_after_gc_reads_packed_objects(tmp_path):
    repo = make_repo(tmp_path / "repo", commits=3)
    git(repo, "gc", "-q")
    assert not any((repo / ".git" / "objects").glob("[0-9a-f][0-9a-f]"))  # only packs remain
    assert read_git_info(repo).dirty is False
    (repo / "runs" / "exp1" / "f1.txt").write_text("x")
    assert read_git_info(repo).dirty is True


def test_touched_but_unchanged_file_is_clean(tmp_path):
    repo = make_repo(tmp_path / "repo")
    tracked = repo / "runs" / "exp1" / "f0.txt"
    os.utime(tracked, (1, 1))  # stat differs from the index, content does not
    assert read_git_info(repo).dirty is False


def test_big_index_leaves_dirty_unknown(tmp_path):
    repo = make_repo(tmp_path / "repo")
    assert read_git_info(repo, max_index_entries=1).dirty is None


def test_remote_url_without_credentials(tmp_path):
    repo = make_repo(tmp_path / "repo")
    git(repo, "remote", "add", "upstream", "git@example.org:team/other.git")
    assert read_git_info(repo).remote_url == "example.org:team/other.git"
    git(repo, "remote", "add", "origin", "https://alice:s3cret@example.org/team/proj.git")
    info = read_git_info(repo)
    assert info.remote_url == "https://example.org/team/proj.git"
    assert "s3cret" not in repr(info)


def test_strip_credentials_forms():
    assert strip_credentials("https://tok_abc@github.com/a/b") == "https://github.com/a/b"
    assert strip_credentials("ssh://git:pw@host:2222/x.git") == "ssh://host:2222/x.git"
    assert strip_credentials("/srv/git/x.git") == "/srv/git/x.git"
    assert strip_credentials("host:path/x.git") == "host:path/x.git"


def test_submodule_reads_its_own_head_branch_and_remote(tmp_path):
    lib = make_repo(tmp_path / "lib")
    outer = make_repo(tmp_path / "outer")
    git(outer, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "vendor/lib")
    git(outer, "commit", "-q", "-m", "sub")
    sub = outer / "vendor" / "lib"
    assert (sub / ".git").is_file()
    info = read_git_info(sub / "runs")
    assert info.worktree == sub
    assert info.commit == git(sub, "rev-parse", "HEAD")
    assert info.remote_url == str(lib)
    assert info.dirty is False
    assert read_git_info(outer).dirty is False
    (sub / "runs" / "exp1" / "f0.txt").write_text("edited in the submodule")
    assert read_git_info(sub).dirty is True


def test_linked_worktree_dirty_and_remote_from_the_common_config(tmp_path):
    repo = make_repo(tmp_path / "repo")
    git(repo, "remote", "add", "origin", "https://u:p@example.org/r.git")
    git(repo, "worktree", "add", "-q", "-b", "feature", str(tmp_path / "wt"))
    info = read_git_info(tmp_path / "wt")
    assert (info.branch, info.dirty, info.remote_url) == ("feature", False, "https://example.org/r.git")
    (tmp_path / "wt" / "runs" / "exp1" / "f1.txt").write_text("changed")
    assert read_git_info(tmp_path / "wt").dirty is True
    assert read_git_info(repo).dirty is False


def test_annotate_runs_fills_only_missing_commits_and_marks_them(tmp_path):
    repo = make_repo(tmp_path / "repo")
    git(repo, "remote", "add", "origin", "https://u:p@example.org/r.git")
    head = git(repo, "rev-parse", "HEAD")
    unit = repo / "runs" / "exp1"
    records = [Run("a:1", "a", "1"), Run("b:2", "b", "2", git_commit="f" * 40), Param("a:1", "lr", "1")]
    out = annotate_runs(records, unit, GitCache())
    runs = {r.run_id: r for r in out if isinstance(r, Run)}
    assert runs["a:1"].git_commit == head and runs["b:2"].git_commit == "f" * 40
    tags = {(t.run_id, t.key): t.value for t in out if isinstance(t, Tag)}
    assert tags == {("a:1", "mlcrawl.git_commit_inferred"): "true", ("a:1", "mlcrawl.git.dirty"): "false",
                    ("a:1", "mlcrawl.git.branch"): "main",
                    ("a:1", "mlcrawl.git.remote_url"): "https://example.org/r.git"}
    assert Param("a:1", "lr", "1") in out


def test_annotate_runs_outside_git_changes_nothing(tmp_path):
    probe = subprocess.run(["git", "rev-parse"], cwd=tmp_path, env=ENV, capture_output=True)
    if probe.returncode == 0:
        pytest.skip("tmp_path lies inside a work tree")
    records = [Run("a:1", "a", "1")]
    assert annotate_runs(records, tmp_path, GitCache()) == records
