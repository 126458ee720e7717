"""mlcrawl's exceptions.  The CLI turns each into one clear line and an exit code.

    MlcrawlError            anything mlcrawl reports to a user (exit 2: could not run)
    ├── ConfigError         bad config file, unknown key, bad flag value
    ├── CatalogError        catalog missing, unwritable, or newer than this program
    │   └── CatalogLocked   another process is crawling into this catalog
    └── RootError           a crawl root is missing or unreadable
"""


class MlcrawlError(Exception):
    """Base of every error mlcrawl reports to its user."""


class ConfigError(MlcrawlError):
    """The configuration or command line is wrong."""


class CatalogError(MlcrawlError):
    """The catalog cannot be opened or written."""


class CatalogLocked(CatalogError):
    """Another crawl holds the catalog."""


class RootError(MlcrawlError):
    """A crawl root cannot be crawled."""
