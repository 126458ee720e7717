"""Secret redaction: one mechanism for every crawler's params, tags and printed values."""

from __future__ import annotations

import dataclasses
import re

from .records import Param, Record, Tag

REDACTED = "***REDACTED***"

# Matches key names such as "api_key", "HF_TOKEN", "db.password", "aws_secret_access_key",
# "private-key", "credentials" — but not "tokenizer" or "num_tokens".
_SECRET_KEY = re.compile(
    r"(?:^|[^a-z])(?:token|password|passwd|pwd|secret|api[_-]?key|apikey|access[_-]?key|"
    r"credentials?|private[_-]?key|auth)(?:$|[^a-z])",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
# "--password=x", "--api-key x", "token=x" inside command lines.
_SECRET_ARG = re.compile(
    r"(?P<key>(?:--?|\b)[\w.-]*(?:token|password|passwd|secret|api[_-]?key|credential|private[_-]?key)[\w.-]*)"
    r"(?P<sep>[=\s]+)(?P<value>\S+)",
    re.IGNORECASE,
)


def is_secret_key(key: str) -> bool:
    """True when a param/tag key names a secret; dotted keys are checked segment by segment."""
    return any(_SECRET_KEY.search(part) for part in re.split(r"[./]", key))


def redact_value(key: str, value: str | None) -> str | None:
    """``value``, or the redaction marker when ``key`` names a secret."""
    if value is None or not is_secret_key(key):
        return value
    return REDACTED


def redact_text(text: str) -> str:
    """Scrub secrets and e-mail addresses out of free text such as a command line."""
    text = _SECRET_ARG.sub(lambda m: f"{m['key']}{m['sep']}{REDACTED}", text)
    return _EMAIL.sub(REDACTED, text)


def redact_record(record: Record) -> Record:
    """The record with its value redacted when it is a Param or Tag whose key names a secret.

    The runner applies this to every record of every crawler before it reaches the catalog.
    """
    if isinstance(record, (Param, Tag)) and record.value is not None and is_secret_key(record.key):
        return dataclasses.replace(record, value=REDACTED)
    return record
