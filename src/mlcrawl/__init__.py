"""mlcrawl: crawl ML experiment folders, notebooks, datasets and models into a DuckDB catalog."""

__version__ = "0.1.0"
