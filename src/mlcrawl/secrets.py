"""Secret redaction: one mechanism for every record, message and printed value.

Two signals, because either alone misses real leaks:

* the **key name** (``api_key``, ``HF_TOKEN``, ``db.password``, ``auth``...): the whole value goes;
* the **value shape**, whatever the key: known token prefixes (GitHub, OpenAI, Slack, AWS,
  Hugging Face, GitLab, Google, npm, PyPI), PEM private-key blocks, ``user:password@`` in URLs,
  ``--password=x`` on command lines, and a long hex or base64 value under any key ending in ``key``.

``Redactor`` applies both to a whole record (every text field, nested mappings and lists of
facts included) and counts what it replaced, for the crawl summary.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .records import Metric, Param, Record, Tag

REDACTED = "***REDACTED***"

# Matches key names such as "api_key", "HF_TOKEN", "db.password", "aws_secret_access_key",
# "private-key", "credentials", "auth" — but not "tokenizer", "num_tokens" or "author".
_SECRET_KEY = re.compile(
    r"(?:^|[^a-z])(?:token|password|passwd|pwd|secret|api[_-]?key|apikey|access[_-]?key|"
    r"credentials?|private[_-]?key|auth)(?:$|[^a-z])",
    re.IGNORECASE,
)
# camelCase keys ("apiKey", "authToken", "secretAccessKey") split before the check.
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
# "--password=x", "--api-key x", "token=x" inside command lines.
_SECRET_ARG = re.compile(
    r"(?P<key>(?:--?|\b)[\w.-]*(?:token|password|passwd|secret|api[_-]?key|apikey|access[_-]?key|"
    r"credential|private[_-]?key)[\w.-]*)(?P<sep>[=:]\s*|\s+)(?P<value>[^\s,;'\"]+)",
    re.IGNORECASE,
)
# Tokens recognisable by their prefix, wherever they appear.
_TOKEN = re.compile(
    r"(?<![A-Za-z0-9])(?:"
    r"gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|"
    r"sk-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_-]{20,}|[rp]k_(?:live|test)_[A-Za-z0-9]{16,}|"
    r"xox[abposr]-[A-Za-z0-9-]{10,}|"
    r"(?:AKIA|ASIA|AIDA|AROA)[0-9A-Z]{16}|"
    r"hf_[A-Za-z0-9]{20,}|api_org_[A-Za-z0-9]{20,}|"
    r"glpat-[A-Za-z0-9_-]{20,}|"
    r"AIza[0-9A-Za-z_-]{35}|"
    r"npm_[A-Za-z0-9]{30,}|pypi-[A-Za-z0-9_-]{50,}|"
    r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"
    r")"
)
# A PEM private key block; an unterminated one (a truncated file) is redacted to the end.
_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.DOTALL)
# "scheme://user:password@host": the password goes, the user and host stay.
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]*:)(?P<pw>[^\s/@]+)(?=@)")
# A long opaque value under a key ending in "key" ("wandb_key", "signing.key", "hmacKey").
_OPAQUE = re.compile(r"[0-9a-fA-F]{32,}|[A-Za-z0-9+/_-]{32,}={0,2}")
_KEY_SUFFIX = re.compile(r"key$", re.IGNORECASE)
# Cheap pre-check: text without any of these cannot hold a shaped secret.
_HINT = re.compile(r"://|-----BEGIN|gh[pousr]_|github_pat_|sk-|[rp]k_|xox|AKIA|ASIA|AIDA|AROA|hf_|api_org_|glpat-|AIza|"
                   r"npm_|pypi-|eyJ|token|passw|secret|api[_-]?key|apikey|access[_-]?key|credential|private[_-]?key|@",
                   re.IGNORECASE)


def is_secret_key(key: str) -> bool:
    """True when a param/tag key names a secret; dotted keys are checked segment by segment."""
    return any(_SECRET_KEY.search(part) for part in re.split(r"[./]", _CAMEL.sub("_", str(key))))


def _is_opaque_under_key(key: str, value: str) -> bool:
    last = re.split(r"[./]", str(key))[-1]
    return bool(_KEY_SUFFIX.search(last)) and _OPAQUE.fullmatch(value.strip()) is not None


def scrub(text: str, emails: bool = False) -> tuple[str, int]:
    """``text`` with shaped secrets (tokens, PEM keys, URL passwords, secret arguments and, with
    ``emails``, e-mail addresses) replaced, and how many were replaced."""
    if not _HINT.search(text):
        return text, 0
    count = 0
    for pattern, replace in _SCRUBBERS if not emails else (*_SCRUBBERS, (_EMAIL, REDACTED)):
        text, n = pattern.subn(replace, text)
        count += n
    return text, count


_SCRUBBERS = (
    (_PEM, REDACTED),
    (_TOKEN, REDACTED),
    (_URL_PASSWORD, lambda m: f"{m['head']}{REDACTED}"),
    (_SECRET_ARG, lambda m: m[0] if m["value"] == REDACTED else f"{m['key']}{m['sep']}{REDACTED}"),
)


def redact_value(key: str, value: str | None) -> str | None:
    """``value``, or the redaction marker when ``key`` names a secret or the value looks like one."""
    if value is None:
        return value
    return _Counted().value(key, value)


def redact_text(text: str) -> str:
    """Scrub secrets and e-mail addresses out of free text such as a command line or a message."""
    return scrub(text, emails=True)[0]


def redact_record(record: Record) -> Record:
    """The record with every secret in it redacted (see ``Redactor.record``)."""
    return _Counted().record(record)


@dataclass
class Redactor:
    """Redacts records, values and messages, and counts every redaction it made.

    The runner keeps one per crawl and reports ``count`` in the crawl summary.
    """

    count: int = 0

    def value(self, key: str, value: str) -> str:
        """A value stored under ``key``: whole when harmless, the marker or scrubbed text when not."""
        if is_secret_key(key) or _is_opaque_under_key(key, value):
            if value == REDACTED:
                return value
            self.count += 1
            return REDACTED
        return self.text(value)

    def text(self, text: str, emails: bool = False) -> str:
        """Free text with shaped secrets (and, with ``emails``, e-mail addresses) scrubbed out."""
        cleaned, n = scrub(text, emails)
        self.count += n
        return cleaned

    def data(self, data: Any, key: str = "") -> Any:
        """A nested value (facts, metadata, columns): secret keys redacted at any depth, text scrubbed."""
        if isinstance(data, str):
            return self.value(key, data) if key else self.text(data)
        if isinstance(data, Mapping):
            return {k: self._mask(v) if is_secret_key(str(k)) and not _is_container(v) else self.data(v, str(k))
                    for k, v in data.items()}
        if isinstance(data, (list, tuple)):
            return type(data)(self.data(v, key) for v in data)
        return data

    def _mask(self, value: Any) -> Any:
        if value is None or value == REDACTED or isinstance(value, bool):
            return value
        self.count += 1
        return REDACTED

    def record(self, record: Record) -> Record:
        """The record with secrets redacted in every text field and nested mapping.

        Param and Tag values are judged with their key; identity fields (paths, ids, keys) are
        kept, so a re-crawl still finds the same row.
        """
        if isinstance(record, Metric):
            return record  # ids, a key and numbers: nothing to redact
        changes: dict[str, Any] = {}
        for f in dataclasses.fields(record):
            if f.name in _IDENTITY_FIELDS:
                continue
            current = getattr(record, f.name)
            if current is None or isinstance(current, (bool, int, float)):
                continue
            if f.name == "value" and isinstance(record, (Param, Tag)):
                new = self.value(record.key, current) if isinstance(current, str) else current
            else:
                new = self.data(current)
            if new != current:
                changes[f.name] = new
        return dataclasses.replace(record, **changes) if changes else record


def _is_container(value: Any) -> bool:
    return isinstance(value, (Mapping, list, tuple))


# Fields that identify a row (or name a file): never rewritten.
_IDENTITY_FIELDS = frozenset({
    "run_id", "source_run_id", "parent_run_id", "experiment_id", "key", "path", "src", "dst",
    "source_path", "resolved_path", "dir", "relation", "src_type", "dst_type", "role", "source",
    "format", "module", "error_type", "severity",
})


class _Counted(Redactor):
    """A throw-away redactor for the uncounted module-level helpers."""
