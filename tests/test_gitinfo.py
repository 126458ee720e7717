"""gitinfo against real repositories built with the git binary (results compared with rev-parse)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mlcrawl.gitinfo import GitCache, GitInfo, read_git_info

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
    assert info == GitInfo(repo, git(repo, "rev-parse", "HEAD"), "main")


def test_packed_refs_after_pack_refs(tmp_path):
    repo = make_repo(tmp_path / "repo")
    git(repo, "branch", "other", "HEAD~1")
    git(repo, "tag", "-a", "v1", "-m", "annotated")  # adds a peeled "^" line to packed-refs
    git(repo, "pack-refs", "--all")
    assert not (repo / ".git" / "refs" / "heads" / "main").exists()
    assert read_git_info(repo / "runs").commit == git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "other")
    assert read_git_info(repo) == GitInfo(repo, git(repo, "rev-parse", "HEAD"), "other")


def test_detached_head(tmp_path):
    repo = make_repo(tmp_path / "repo")
    git(repo, "checkout", "-q", "--detach", "HEAD~1")
    assert read_git_info(repo / "runs" / "exp1") == GitInfo(repo, git(repo, "rev-parse", "HEAD"), None)


def test_linked_worktree_reads_its_own_head_and_the_shared_refs(tmp_path):
    repo = make_repo(tmp_path / "repo")
    git(repo, "worktree", "add", "-q", "-b", "feature", str(tmp_path / "wt"), "HEAD~1")
    assert (tmp_path / "wt" / ".git").is_file()
    info = read_git_info(tmp_path / "wt" / "runs" / "exp1")
    assert info == GitInfo(tmp_path / "wt", git(tmp_path / "wt", "rev-parse", "HEAD"), "feature")
    git(repo, "pack-refs", "--all")
    assert read_git_info(tmp_path / "wt").commit == git(tmp_path / "wt", "rev-parse", "HEAD")


def test_git_file_with_a_relative_gitdir(tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / ".git").rename(tmp_path / "store.git")
    (repo / ".git").write_text("gitdir: ../store.git\n")
    assert read_git_info(repo / "runs").commit == git(repo, "rev-parse", "HEAD")


def test_unborn_branch_has_no_commit(tmp_path):
    repo = make_repo(tmp_path / "repo", commits=0)
    assert read_git_info(repo) == GitInfo(repo, None, "main")


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
