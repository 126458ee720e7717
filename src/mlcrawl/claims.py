"""Claims decided in bulk: which crawlers own a file or a folder, arbitrated by priority.

Crawlers declare file-name globs and folder shapes (``Claims``); this module compiles them once
per crawl and asks a crawler's own ``match``/``match_folder`` only for candidates.  Among the
crawlers that still claim a path, only those with the highest priority get it, so no crawler
needs to know another one exists.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import translate
from pathlib import Path

from .crawler import BaseCrawler

MatchFailed = Callable[[BaseCrawler, str, Exception], None]


@dataclass(frozen=True)
class _FileRule:
    crawler: BaseCrawler
    pattern: re.Pattern[str]
    priority: int


def _compile(globs: tuple[str, ...]) -> re.Pattern[str]:
    # One alternation per crawler; file names match case-insensitively (MODEL.PT is a model too).
    return re.compile("|".join(f"(?:{translate(g)})" for g in globs), re.IGNORECASE)


class ClaimMatcher:
    """The compiled claims of the crawlers of one crawl.

    ``on_failure`` is told when a crawler's ``match`` raises; that crawler is then left out for
    the rest of the crawl (one report, not one per path).
    """

    def __init__(self, crawlers: list[BaseCrawler], on_failure: MatchFailed) -> None:
        self.file_rules = [_FileRule(c, _compile(c.claims.files), c.claims.file_priority)
                           for c in crawlers if c.claims.files]
        self.folder_crawlers = [c for c in crawlers if c.claims.folders]
        self.on_failure = on_failure
        self.disabled: set[str] = set()

    def for_file(self, path: str, name: str) -> list[BaseCrawler]:
        """The crawlers that own the file at ``path`` (its last component is ``name``)."""
        candidates = [(r.crawler, r.priority) for r in self.file_rules
                      if r.crawler.name not in self.disabled and r.pattern.match(name)]
        if not candidates:
            return []
        return self._arbitrate([(c, p) for c, p in candidates if self._ask(c, path, lambda c=c: c.match(Path(path), False))])

    def refine_file(self, crawler: BaseCrawler, path: str) -> bool:
        """Ask ``crawler.match`` about a file whose name it claims (False once it has raised)."""
        return crawler.name not in self.disabled and self._ask(crawler, path, lambda: crawler.match(Path(path), False))

    def for_folder(self, path: str, names: frozenset[str]) -> list[BaseCrawler]:
        """The crawlers that own the folder at ``path`` whose entries are ``names``."""
        folder_name = path.rsplit("/", 1)[-1]
        claimed = []
        for crawler in self.folder_crawlers:
            if crawler.name in self.disabled:
                continue
            priorities = [s.priority for s in crawler.claims.folders if s.matches(folder_name, names)]
            if not priorities:
                continue
            refine = getattr(crawler, "match_folder", None)
            check = (lambda c=crawler, r=refine: r(Path(path), names)) if refine else (lambda c=crawler: c.match(Path(path), True))
            if self._ask(crawler, path, check):
                claimed.append((crawler, max(priorities)))
        return self._arbitrate(claimed)

    def _ask(self, crawler: BaseCrawler, path: str, check: Callable[[], bool]) -> bool:
        try:
            return bool(check())
        except Exception as exc:  # a broken match() disables that crawler, never the crawl
            self.disabled.add(crawler.name)
            self.on_failure(crawler, path, exc)
            return False

    @staticmethod
    def _arbitrate(claimed: list[tuple[BaseCrawler, int]]) -> list[BaseCrawler]:
        if len(claimed) <= 1:
            return [c for c, _ in claimed]
        top = max(p for _, p in claimed)
        return [c for c, p in claimed if p == top]
