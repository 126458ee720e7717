"""The CLI under a real pseudo-terminal, as a user runs it (a pipe hides tty-only code paths)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

from helpers import CLI, make_tree, rows


def run_in_pty(args: list[str], cwd: Path, timeout: float = 120) -> tuple[int, str, str]:
    """Run the CLI with stdin and stderr on a pty and stdout on a pipe; returns (code, stdout, tty text)."""
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
