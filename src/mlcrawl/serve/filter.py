"""The runs filter language: ``metrics.accuracy > 0.9 and params.lr = '0.01' and tags.stage != 'dev'``.

Grammar (MLflow's search syntax, with ``or``, ``not`` and parentheses)::

    expr    := term ('or' term)*
    term    := factor ('and' factor)*
    factor  := 'not' factor | '(' expr ')' | compare
    compare := field op value | field 'is' ['not'] 'null'
    field   := (metrics|params|tags) '.' key | run column (source, experiment, name, status, ...)
    key     := name (letters, digits, _ - / : .) | `backquoted key`
    op      := = | != | <> | < | <= | > | >= | like | ilike
    value   := 'single' | "double" quoted string | number

The parser yields a tree that compiles to a SQL condition over the runs table aliased ``r``
with every key and value bound as a parameter: no user text is ever part of the SQL.
A key absent from a run makes ``=``, ``<``... false and ``!=`` true (the run does not have it
equal to that).  Errors are values: ``parse`` raises FilterError with the position.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_LENGTH = 4000
MAX_DEPTH = 32

#: Run columns a filter, a column or a sort may name (and their SQL, all from ``runs r``).
RUN_COLUMNS: dict[str, str] = {
    "run_id": "r.run_id", "source": "r.source", "experiment": "r.experiment", "name": "r.name",
    "status": "r.status", "start_time": "r.start_time", "end_time": "r.end_time", "user": "r.user",
    "git_commit": "r.git_commit", "dir": "r.dir", "root": "r.root",
}
_TIME_COLUMNS = {"start_time", "end_time"}
_FAMILIES = {"metrics", "metric", "params", "param", "tags", "tag"}
_OPS = {"=": "=", "==": "=", "!=": "<>", "<>": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">=",
        "like": "LIKE", "ilike": "ILIKE"}

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))
  | (?P<str>'(?:[^']|'')*'|"(?:[^"]|"")*")
  | (?P<bq>`(?:[^`]|``)*`)
  | (?P<op>==|!=|<>|<=|>=|=|<|>)
  | (?P<paren>[()])
  | (?P<word>[A-Za-z_][\w\-/:]*)
  | (?P<dot>\.)
""", re.VERBOSE)


class FilterError(ValueError):
    """A filter that is not in the language; the message says where and what was expected."""


@dataclass(frozen=True)
class Field:
    """What a comparison looks at: ``family`` metrics/params/tags with a key, or a run column."""

    family: str  # "metrics", "params", "tags" or "run"
    key: str

    @classmethod
    def parse(cls, text: str) -> Field:
        """A column name as the table header and the query string spell it (``metrics.acc``)."""
        family, dot, key = text.partition(".")
        family = {"metric": "metrics", "param": "params", "tag": "tags"}.get(family, family)
        if dot and family in ("metrics", "params", "tags") and key:
            return cls(family, key)
        if not dot and text in RUN_COLUMNS:
            return cls("run", text)
        raise FilterError(f"unknown column {text!r}: use metrics.KEY, params.KEY, tags.KEY or one of "
                          + ", ".join(RUN_COLUMNS))

    @property
    def label(self) -> str:
        """The spelling users type."""
        return self.key if self.family == "run" else f"{self.family}.{self.key}"


@dataclass(frozen=True)
class Compare:
    """``field op value``; ``value`` None with op IS / IS NOT for null tests."""

    field: Field
    op: str
    value: str | float | None


@dataclass(frozen=True)
class BoolOp:
    """``and`` / ``or`` of two or more conditions."""

    op: str
    items: tuple


@dataclass(frozen=True)
class Not:
    """Negation."""

    item: object


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    pos: int


def tokenize(text: str) -> list[_Tok]:
    """The tokens of ``text``; an unknown character or unbalanced quote is a FilterError."""
    if len(text) > MAX_LENGTH:
        raise FilterError(f"filter is {len(text)} characters long; at most {MAX_LENGTH} are accepted")
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            char = text[pos]
            if char in "'\"`":
                raise FilterError(f"unbalanced quote {char} at position {pos + 1}: close it with another {char}")
            raise FilterError(f"unexpected character {char!r} at position {pos + 1}")
        if m.lastgroup != "ws":
            tokens.append(_Tok(m.lastgroup, m.group(), pos))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> _Tok | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def at_word(self, *words: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind == "word" and tok.text.lower() in words

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise FilterError("the filter ends too early: a comparison like metrics.accuracy > 0.9 is missing")
        self.i += 1
        return tok

    def fail(self, expected: str) -> FilterError:
        tok = self.peek()
        if tok is None:
            return FilterError(f"the filter ends where {expected} was expected")
        return FilterError(f"expected {expected} at position {tok.pos + 1}, found {tok.text[:40]!r}")

    def expr(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FilterError(f"filter nested deeper than {MAX_DEPTH} levels")
        items = [self.term()]
        while self.at_word("or"):
            self.take()
            items.append(self.term())
        self.depth -= 1
        return items[0] if len(items) == 1 else BoolOp("OR", tuple(items))

    def term(self):
        items = [self.factor()]
        while self.at_word("and"):
            self.take()
            items.append(self.factor())
        return items[0] if len(items) == 1 else BoolOp("AND", tuple(items))

    def factor(self):
        if self.at_word("not"):
            self.take()
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise FilterError(f"filter nested deeper than {MAX_DEPTH} levels")
            item = Not(self.factor())
            self.depth -= 1
            return item
        tok = self.peek()
        if tok is not None and tok.kind == "paren" and tok.text == "(":
            self.take()
            inner = self.expr()
            close = self.peek()
            if close is None or close.text != ")":
                raise self.fail("')' to close the '(' at position " + str(tok.pos + 1))
            self.take()
            return inner
        return self.compare()

    def field(self) -> Field:
        tok = self.peek()
        if tok is None or tok.kind != "word":
            raise self.fail("a field such as metrics.accuracy, params.lr, tags.stage or source")
        self.take()
        name = tok.text.lower()
        if name in _FAMILIES:
            dot = self.peek()
            if dot is None or dot.kind != "dot":
                raise self.fail(f"'.' and a key after {tok.text}")
            self.take()
            key = self.take()
            if key.kind == "bq":
                return Field.parse(f"{name}.{key.text[1:-1].replace('``', '`')}")
            if key.kind not in ("word", "num"):
                raise FilterError(f"expected a key after {tok.text}. at position {key.pos + 1}")
            parts = [key.text]
            while (nxt := self.peek()) is not None and nxt.kind == "dot":
                self.take()
                parts.append(self.take().text)
            return Field.parse(f"{name}.{'.'.join(parts)}")
        if name in RUN_COLUMNS:
            return Field("run", name)
        raise FilterError(f"unknown field {tok.text[:40]!r} at position {tok.pos + 1}: use metrics.KEY, "
                          f"params.KEY, tags.KEY or one of {', '.join(RUN_COLUMNS)}")

    def compare(self) -> Compare:
        field = self.field()
        if self.at_word("is"):
            self.take()
            negate = self.at_word("not")
            if negate:
                self.take()
            if not self.at_word("null"):
                raise self.fail("null after is")
            self.take()
            return Compare(field, "IS NOT" if negate else "IS", None)
        tok = self.peek()
        if tok is None or not (tok.kind == "op" or (tok.kind == "word" and tok.text.lower() in _OPS)):
            raise self.fail("an operator (=, !=, <, <=, >, >=, like, ilike)")
        self.take()
        op = _OPS[tok.text.lower()]
        value = self.take()
        if value.kind == "num":
            if op in ("LIKE", "ILIKE"):
                raise FilterError(f"{tok.text} needs a quoted pattern, e.g. '%lr%' (position {value.pos + 1})")
            return Compare(field, op, float(value.text))
        if value.kind == "str":
            quote = value.text[0]
            return Compare(field, op, value.text[1:-1].replace(quote * 2, quote))
        raise FilterError(f"expected a quoted string or a number at position {value.pos + 1}, "
                          f"found {value.text[:40]!r}")


def parse(text: str):
    """The condition tree of a filter string; None for an empty filter."""
    parser = _Parser(text)
    if not parser.tokens:
        return None
    tree = parser.expr()
    if parser.peek() is not None:
        raise parser.fail("'and', 'or' or the end of the filter")
    return tree


def field_sql(field: Field, params: list) -> str:
    """A scalar SQL expression for a field's value of run ``r`` (keys bound in ``params``)."""
    if field.family == "run":
        return RUN_COLUMNS[field.key]
    params.append(field.key)
    if field.family == "metrics":
        return "(SELECT m.value FROM latest_metrics m WHERE m.run_id = r.run_id AND m.key = ?)"
    table = field.family
    order = "crawl_id DESC" if table == "params" else "crawl_id DESC, value"
    return f"(SELECT x.value FROM {table} x WHERE x.run_id = r.run_id AND x.key = ? ORDER BY {order} LIMIT 1)"


def _compare_sql(node: Compare, params: list) -> str:
    field = node.field
    if node.value is None:
        return f"{field_sql(field, params)} {node.op} NULL"
    numeric = isinstance(node.value, float)
    if field.family == "run":
        column = RUN_COLUMNS[field.key]
        if field.key in _TIME_COLUMNS:
            column = f"strftime({column}, '%Y-%m-%d %H:%M:%S')" if not numeric else f"epoch({column})"
        elif numeric:
            column = f"TRY_CAST({column} AS DOUBLE)"
        params.append(node.value)
        condition = f"{column} {node.op} ?"
        return f"coalesce({condition}, false)" if node.op != "<>" else f"coalesce({condition}, true)"
    if field.family == "metrics":
        # a metric is a number: a quoted number compares as one, other text (LIKE patterns) as text
        if not numeric and node.op not in ("LIKE", "ILIKE") and _is_number(node.value):
            node, numeric = Compare(field, node.op, float(node.value)), True
        table, value = "latest_metrics", "x.value" if numeric else "CAST(x.value AS VARCHAR)"
    else:
        table = field.family
        value = ("coalesce(x.value_num, TRY_CAST(x.value AS DOUBLE))" if table == "params" else
                 "TRY_CAST(x.value AS DOUBLE)") if numeric else "x.value"
    if node.op == "<>":
        # absent or different: no row of this key has the value
        params.extend([field.key, node.value])
        return f"NOT EXISTS (SELECT 1 FROM {table} x WHERE x.run_id = r.run_id AND x.key = ? AND {value} = ?)"
    params.extend([field.key, node.value])
    return f"EXISTS (SELECT 1 FROM {table} x WHERE x.run_id = r.run_id AND x.key = ? AND {value} {node.op} ?)"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def to_sql(tree, params: list) -> str:
    """The SQL condition of a parsed filter over ``runs r``; values and keys appended to ``params``."""
    if tree is None:
        return "true"
    if isinstance(tree, Compare):
        return _compare_sql(tree, params)
    if isinstance(tree, Not):
        return f"NOT ({to_sql(tree.item, params)})"
    return "(" + f" {tree.op} ".join(to_sql(item, params) for item in tree.items) + ")"


def compile_filter(text: str) -> tuple[str, list]:
    """``(SQL condition, parameters)`` of a filter string; FilterError when it is not valid."""
    params: list = []
    return to_sql(parse(text or ""), params), params
