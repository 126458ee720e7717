"""The crawler registry: built-ins listed in code plus the ``mlcrawl.crawlers`` entry points.

Loading is lazy and forgiving: a crawler whose module or optional dependency fails to import
is listed as disabled with the reason (and a ``pip install`` hint when one is known), never a
crash.  Built-ins go through the same path as third-party crawlers.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points

from .crawler import BaseCrawler

ENTRY_POINT_GROUP = "mlcrawl.crawlers"
NO_PLUGINS_ENV = "MLCRAWL_NO_PLUGINS"

#: name -> "module:Class" of the crawlers shipped in ``crawlers/``.
BUILTIN_CRAWLERS: dict[str, str] = {
    "generic": "mlcrawl.crawlers.generic:GenericCrawler",
    "datasets": "mlcrawl.crawlers.datasets:DatasetsCrawler",
    "notebook": "mlcrawl.crawlers.notebook:NotebookCrawler",
    "code": "mlcrawl.crawlers.code:CodeCrawler",
    "mlflow": "mlcrawl.crawlers.mlflow:MlflowFileStoreCrawler",
    "mlflow_sqlite": "mlcrawl.crawlers.mlflow_sqlite:MlflowSqliteCrawler",
    "tensorboard": "mlcrawl.crawlers.tensorboard:TensorboardCrawler",
    "wandb": "mlcrawl.crawlers.wandb:WandbCrawler",
    "lightning": "mlcrawl.crawlers.lightning:LightningCrawler",
    "hydra": "mlcrawl.crawlers.hydra:HydraCrawler",
    "sacred": "mlcrawl.crawlers.sacred:SacredCrawler",
    "dvc": "mlcrawl.crawlers.dvc:DvcCrawler",
    "huggingface": "mlcrawl.crawlers.huggingface:HuggingfaceCrawler",
    "models": "mlcrawl.crawlers.models:ModelsCrawler",
    "environment": "mlcrawl.crawlers.environment:EnvironmentCrawler",
}


@dataclass(frozen=True)
class CrawlerEntry:
    """One registered crawler: loaded (``crawler`` set) or disabled (``problem`` set)."""

    name: str
    target: str
    builtin: bool
    crawler: BaseCrawler | None = None
    problem: str | None = None

    @property
    def enabled(self) -> bool:
        return self.crawler is not None


def _load(name: str, target: str, builtin: bool) -> CrawlerEntry:
    module_name, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
        crawler = cls()
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        hint = f"missing module {missing!r}"
        extra = getattr(exc, "mlcrawl_extra", None)
        if extra:
            hint += f"; pip install 'mlcrawl[{extra}]'"
        return CrawlerEntry(name, target, builtin, problem=hint)
    except Exception as exc:  # a broken plugin must not stop the crawl
        return CrawlerEntry(name, target, builtin, problem=f"{type(exc).__name__}: {exc}")
    if not isinstance(crawler, BaseCrawler):
        return CrawlerEntry(name, target, builtin, problem="does not subclass mlcrawl.api.BaseCrawler")
    if getattr(crawler, "name", None) != name:
        return CrawlerEntry(name, target, builtin,
                            problem=f"entry point {name!r} names a crawler called {getattr(crawler, 'name', None)!r}")
    return CrawlerEntry(name, target, builtin, crawler=crawler)


def discover(builtins: dict[str, str] | None = None, plugins: Iterable | None = None) -> list[CrawlerEntry]:
    """Load every built-in crawler and every entry point of the ``mlcrawl.crawlers`` group.

    ``MLCRAWL_NO_PLUGINS=1`` skips the entry points, so installed third-party crawlers never leak
    into tests or into a crawl that must be reproducible.
    """
    builtins = BUILTIN_CRAWLERS if builtins is None else builtins
    entries = [_load(name, target, True) for name, target in builtins.items()]
    seen = set(builtins)
    if plugins is None:
        plugins = () if os.environ.get(NO_PLUGINS_ENV) == "1" else entry_points(group=ENTRY_POINT_GROUP)
    for ep in plugins:
        if ep.name in seen:
            entries.append(CrawlerEntry(ep.name, ep.value, False, problem="name taken by another crawler"))
            continue
        seen.add(ep.name)
        entries.append(_load(ep.name, ep.value, False))
    return entries


def select(entries: list[CrawlerEntry], enabled: Iterable[str] = (), disabled: Iterable[str] = ()) -> list[BaseCrawler]:
    """The loaded crawlers to run: all of them, or only ``enabled``, minus ``disabled``.

    An unknown name, or ``enabled`` naming a crawler that failed to load, is a ConfigError.
    """
    from .errors import ConfigError

    enabled, disabled = set(enabled), set(disabled)
    known = {e.name for e in entries}
    unknown = (enabled | disabled) - known
    if unknown:
        raise ConfigError(f"unknown crawler(s): {', '.join(sorted(unknown))}; valid: {', '.join(sorted(known))}")
    broken = [e for e in entries if e.name in enabled and e.crawler is None]
    if broken:
        raise ConfigError("; ".join(f"crawler {e.name!r} failed to load: {e.problem}" for e in broken))
    return [
        e.crawler
        for e in entries
        if e.crawler is not None and (not enabled or e.name in enabled) and e.name not in disabled
    ]
