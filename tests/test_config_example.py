"""config.example.toml documents every option of every built-in crawler, with valid defaults."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

from mlcrawl.config import load_config
from mlcrawl.crawler import options_from
from mlcrawl.registry import BUILTIN_CRAWLERS, discover

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"


def test_every_builtin_crawler_option_is_in_the_example_with_a_valid_default():
    text = EXAMPLE.read_text()
    load_config(EXAMPLE)  # the example itself parses and names only known keys
    # Uncomment "# key = value" lines inside [crawlers.*] tables to check the documented values.
    uncommented, section = [], None
    for line in text.splitlines():
        if line.startswith("["):
            section = line
        if section and section.startswith("[crawlers.") and (m := re.match(r"^# (\w+ = .*?)(\s+#.*)?$", line)):
            uncommented.append(m.group(1))
        else:
            uncommented.append(line)
    documented = tomllib.loads("\n".join(uncommented)).get("crawlers", {})
    for entry in discover():
        if entry.name not in BUILTIN_CRAWLERS:
            continue
        assert entry.crawler is not None, f"{entry.name}: {entry.problem}"
        names = {f.name for f in dataclasses.fields(entry.crawler.Options)}
        if not names:
            continue
        assert set(documented.get(entry.name, {})) == names, f"[crawlers.{entry.name}] must list {sorted(names)}"
        options = options_from(entry.crawler.Options, documented[entry.name], entry.name)
        defaults = entry.crawler.Options()
        for name in names:
            value = getattr(options, name)
            expected = getattr(defaults, name)
            assert (list(value) if isinstance(value, (list, tuple)) else value) == \
                (list(expected) if isinstance(expected, tuple) else expected), f"{entry.name}.{name}"
