"""The DuckDB catalog: schema and migrations, the Arrow batch writer, views, export."""

from .store import Catalog, CrawlLock

__all__ = ["Catalog", "CrawlLock"]
