"""Built-in crawlers, one module per source format (installed as ``mlcrawl.crawlers``)."""
