"""The CLI under a real pseudo-terminal, as a user runs it (a pipe hides tty-only code paths)."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path

from helpers import CLI, make_tree, rows


def run_in_pty(args: list[str], cwd: Path, timeout: float = 120, interrupt_on: str | None = None) -> tuple[int, str, str]:
    """Run the CLI with stdin and stderr on a pty and stdout on a pipe; returns (code, stdout, tty text).

    With ``interrupt_on`` (a regex), SIGINT (what Ctrl-C sends) goes to the process once the terminal shows it.
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))  # a real terminal has a size
    proc = subprocess.Popen([*CLI, *args], cwd=cwd, stdin=slave, stderr=slave, stdout=subprocess.PIPE,
                            env=dict(os.environ, HOME="/tmp", COLUMNS="100"), close_fds=True)
    os.close(slave)
    tty = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            tty += chunk
            if interrupt_on and re.search(interrupt_on.encode(), tty):
                proc.send_signal(signal.SIGINT)
                interrupt_on = None
        elif proc.poll() is not None:
            break
    stdout = proc.stdout.read().decode()
    code = proc.wait(timeout=10)
    os.close(master)
    return code, stdout, tty.decode(errors="replace")


def test_first_crawl_in_a_terminal_draws_progress_on_stderr(tmp_path):
    root = make_tree(tmp_path / "exp", {f"f{i}.txt": str(i) for i in range(1500)} | {"metrics.json": '{"acc": 1}'})
    code, stdout, tty = run_in_pty(["crawl", str(root)], cwd=tmp_path)
    assert code == 0, tty
    assert "Traceback" not in tty
    assert "crawling" in tty and "files" in tty  # the tqdm bar went to the terminal
    assert "crawling" not in stdout and "1501 files seen" in stdout
    assert rows(tmp_path / "mlcrawl.duckdb", "select count(*) from files")[0][0] == 1501


def test_a_second_crawl_draws_a_bar_with_a_known_total(tmp_path):
    root = make_tree(tmp_path / "exp", {f"f{i}.txt": str(i) for i in range(300)})
    assert run_in_pty(["crawl", str(root)], cwd=tmp_path)[0] == 0
    (root / "new.txt").write_text("n")
    code, stdout, tty = run_in_pty(["crawl", str(root)], cwd=tmp_path)
    assert code == 0 and "Traceback" not in tty
    assert "100%" in tty and "301/301" in tty  # the total grew past the last crawl's 300 files
    assert "%" not in stdout and "301 files seen" in stdout


def test_ctrl_c_during_a_crawl_is_one_line_exit_130_and_the_next_crawl_completes(tmp_path):
    root = make_tree(tmp_path / "exp", {f"d{i // 500}/f{i}.txt": str(i) * 200 for i in range(20000)})
    code, stdout, tty = run_in_pty(["crawl", str(root)], cwd=tmp_path, interrupt_on=r"crawling: [1-9][0-9]* files")
    assert code == 130, tty
    assert "Traceback" not in tty and tty.rstrip().endswith("interrupted")
    assert stdout == ""
    assert rows(tmp_path / "mlcrawl.duckdb", "select status from crawls") == [("interrupted",)]
    code, stdout, tty = run_in_pty(["crawl", str(root)], cwd=tmp_path)
    assert code == 0 and "20000 files seen" in stdout, tty
    assert rows(tmp_path / "mlcrawl.duckdb", "select count(*) from files where deleted_at is null") == [(20000,)]


def test_export_draws_progress_on_stderr_and_python_dash_m_is_the_same_cli(tmp_path):
    root = make_tree(tmp_path / "exp", {"metrics.json": '{"acc": 1}', "a.csv": "x\n1\n"})
    assert run_in_pty(["crawl", str(root), "--quiet"], cwd=tmp_path)[0] == 0
    code, stdout, tty = run_in_pty(["export", str(tmp_path / "out")], cwd=tmp_path)
    assert code == 0 and "Traceback" not in tty
    assert "exporting" in tty and "tables" in tty
    assert "exporting" not in stdout and "files            -> " in stdout
    assert CLI[1:3] == ["-m", "mlcrawl"]  # every CLI test runs `python -m mlcrawl`


def test_watch_in_a_terminal_logs_on_stderr_and_ctrl_c_ends_the_session(tmp_path):
    root = make_tree(tmp_path / "exp", {"metrics.json": '{"acc": 1}'})
    code, stdout, tty = run_in_pty(["watch", str(root), "--poll", "--interval", "1"], cwd=tmp_path,
                                   interrupt_on="catch-up crawl")
    assert code == 0 and "Traceback" not in tty, tty
    assert "watch session" in tty and stdout == ""
    assert rows(tmp_path / "mlcrawl.duckdb", "select status from crawls where kind = 'watch'") == [("ok",)]
