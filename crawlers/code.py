"""Python scripts: the modules they import and the files they read and write, never run.

One unit is one ``.py`` file::

    src/
      prepare.py      import pandas as pd                     -> Import pandas
                      df = pd.read_csv("data/raw/iris.csv")   -> Reference read, line 10
                      df.to_csv("data/prepared/train.csv")    -> Reference write, line 15

The analysis is ``_codeanalysis`` (shared with notebooks).  A script runs from wherever it
was launched, so a relative path is tried against the script's folder and every folder up
to the crawl root; the first candidate that exists wins.  The folder under which most of the
script's paths exist is taken as its working directory and places the paths that do not
exist (yet), such as outputs never written.  Resolution helpers here are also used by the
notebook crawler.
"""

from __future__ import annotations

import io
import os
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mlcrawl.api import BaseCrawler, Claims, CrawlContext, Import, Options, Record

from ._codeanalysis import CodeAnalyzer
from ._references import reference_records


def is_code_snapshot(path: Path) -> bool:
    """A copy of the code a run stored (Sacred ``_sources/``, MLflow ``artifacts/code/``, W&B
    ``run-*/files/code/``): the code that ran, not live code; its tool's crawler links it to its run."""
    parts = path.parts
    if len(parts) >= 2 and parts[-2] == "_sources":
        return True
    for i in range(1, len(parts) - 1):
        if parts[i] == "code" and (parts[i - 1] == "artifacts"
                                   or (parts[i - 1] == "files" and i >= 2 and "run-" in parts[i - 2])):
            return True
    return False


#: Hand-written scripts are kilobytes; ast.parse needs ~50x a file's size in memory, so a
#: bigger file (generated, or a hostile one) is refused instead of parsed.
DEFAULT_MAX_BYTES = 16 << 20


@dataclass(frozen=True)
class CodeOptions(Options):
    """Options of ``[crawlers.code]``."""

    max_bytes: int = DEFAULT_MAX_BYTES
    """a .py file larger than this is not parsed (one error row)"""


class CodeCrawler(BaseCrawler):
    """Reads ``.py`` files into imports and file references."""

    name = "code"
    claims = Claims(files=("*.py",))
    Options = CodeOptions
    version = 1

    def match(self, path: Path, is_dir: bool) -> bool:
        """Claim ``*.py`` files outside ``.ipynb_checkpoints`` folders and stored code snapshots."""
        return (not is_dir and path.suffix == ".py" and ".ipynb_checkpoints" not in path.parts
                and not is_code_snapshot(path))

    def crawl(self, unit: Path, ctx: CrawlContext) -> Iterator[Record]:
        """Yield the script's imports and references."""
        rel = ctx.relpath(unit)
        source = read_source(unit, ctx)
        analyzer = CodeAnalyzer(file_path=os.path.abspath(unit))
        analyzer.add_source(source)
        for problem in analyzer.facts.problems:
            ctx.warn(f"line {problem.line}: {problem.message}", unit, "syntax_error")
        yield from (Import(rel, module) for module in analyzer.facts.imports)
        yield from reference_records(rel, analyzer.facts.references, script_bases(unit, ctx), ctx)


def read_source(unit: Path, ctx: CrawlContext) -> str:
    """The script's text, decoded per its PEP 263 coding cookie (UTF-8 when it has none).

    Undecodable bytes are replaced, with a warning, so the rest of the file is still read.
    """
    data = ctx.read_bytes(unit, limit=int(ctx.options.get("max_bytes", DEFAULT_MAX_BYTES)))
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:  # an unknown codec in the cookie, or no cookie and bad UTF-8
        if "unknown encoding" in str(exc):
            ctx.warn(f"coding cookie not usable ({exc}); read as UTF-8", unit, "encoding")
        encoding = "utf-8"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        ctx.warn(f"not valid {encoding} at byte {exc.start}; undecodable bytes replaced", unit, "encoding")
        return data.decode(encoding, errors="replace")


def script_bases(unit: Path, ctx: CrawlContext) -> list[str]:
    """The script's folder and each parent up to the crawl root, nearest first."""
    here = Path(os.path.abspath(unit)).parent
    bases = [here, *here.parents]
    if ctx.root not in bases:
        return [str(ctx.root)]
    return [str(b) for b in bases[: bases.index(ctx.root) + 1]]
