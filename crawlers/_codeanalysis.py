"""Static analysis of Python code: imports and the files it reads and writes, never run.

Shared by the notebook crawler (one source per code cell, analysed in order) and the code
crawler (one ``.py`` file)::

    cell 0   DATA_DIR = "../data"                 constants tracked across cells, in order
    cell 1   %matplotlib inline                   IPython syntax masked as nbQA does
             df = pd.read_csv(f"{DATA_DIR}/x.csv")   -> read  ../data/x.csv  (cell 1, line 2)
    cell 2   df.to_parquet(Path(DATA_DIR) / "y")     -> write ../data/y      (cell 2, line 1)

Only :mod:`ast` is used: expressions are folded from literals, known constants and a few pure
path functions (``os.path.join``, ``Path(...) / "x"``, ``.with_suffix``, f-strings, ``%``).
Nothing is evaluated.  A source with a syntax error is reported and skipped; the others go on.
The results are plain dataclasses; the crawlers turn them into records.
"""

from __future__ import annotations

import ast
import bisect
import itertools
import posixpath
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

#: At most this many candidate values are kept for one expression (``for lr in [...]``).
MAX_VALUES = 16

MAGIC_PLACEHOLDER = "__ipython_magic__"

# Cell magics whose body is still Python: mask the first line, analyse the rest.
_PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug", "pypy", "python", "python3"})
_ASSIGNED_ESCAPE = re.compile(r"^(?P<target>[A-Za-z_][\w.,\s\[\]]*?)\s*=\s*[!%]")
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
_IMPORT = re.compile(r"\bimport\b")
# An assignment, a for loop or a with-as, line by line: its targets and the rest of the line.
_ASSIGNED = re.compile(
    r"^\s*(?:for\s+(?P<loop>[^:]+?)\s+in\b|with\b.*?\bas\s+(?P<with>[\w\s,()]+)"
    r"|(?P<lhs>[^=#'\"]+?)\s*(?://|\*\*|>>|<<|[-+*/%&|^@])?=(?!=))(?P<rhs>.*)",
    re.MULTILINE,
)
# A right-hand side that could fold to a constant path: literals, names, path building.
_CONSTANT_LIKE = re.compile(r"['\"\d/+%]|Path|path|join|format|^\s*[A-Za-z_][\w.]*\s*:?\s*$")
#: The working directory after a change that does not fold to a constant.
UNKNOWN_CWD = "?"
#: ``%cd DIR`` is masked to a call of this name, so the change of directory keeps its place
#: among the statements.
CD_CALL = "__mlcrawl_cd__"
_CHDIR_CALLS = frozenset({"os.chdir", CD_CALL})
_MAYBE_IPYTHON = re.compile(r"^\s*[%!?]|\?\s*$|=\s*[!%]", re.MULTILINE)
#: IPython runs these names as magics without the ``%`` (automagic) when the line is not Python.
_AUTOMAGIC = re.compile(r"^(\s*)(cd|pwd|ls|pip|conda|env|who|whos|history|alias|bookmark|dhist|dirs|popd|pushd"
                        r"|reset|rehashx|load_ext|matplotlib|autoreload|mkdir|cat|rm|cp|mv|less|man)(?=\s|$)")
#: ``%time stmt``/``%timeit [-n N -r R] stmt`` run ``stmt`` as Python: keep it.
_TIMED = re.compile(r"^%(?:time|timeit)\s+(?:-[a-z]\s*\d*\s+)*(?P<stmt>[^-\s].*)$")
_HELP = re.compile(r"^(?:\?{1,2}[\w.]+|[\w.\[\]()]+\?{1,2})$")
_URI_SCHEME = re.compile(r"^[A-Za-z][\w+.-]*:")


@dataclass(frozen=True, slots=True)
class FileRef:
    """A file named in code: ``direction`` is read, write or unknown; ``line`` is 1-based."""

    raw: str
    direction: str
    call: str
    cell: int | None
    line: int
    relative_to_source: bool = False  # the tool resolves it against the code file's folder
    cwd: str | None = None  # where ``os.chdir``/``%cd`` had moved the program, from where it started


@dataclass(frozen=True, slots=True)
class CodeProblem:
    """A source that could not be analysed (a syntax error), with where it was."""

    cell: int | None
    line: int | None
    message: str


@dataclass
class CodeFacts:
    """What analysis found over all sources: modules imported, file references, problems."""

    imports: list[str] = field(default_factory=list)
    references: list[FileRef] = field(default_factory=list)
    problems: list[CodeProblem] = field(default_factory=list)
    masked_lines: int = 0


class PathStr(str):
    """A string that came from a ``pathlib`` constructor, so ``/`` joins it."""


# --- which calls read or write files --------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Io:
    direction: str
    position: int | None  # index of the path among positional arguments; None: keyword only
    keywords: tuple[str, ...] = ()
    default: str | None = None  # the tool's own location when the argument is not given
    subfolder: str | None = None  # what the tool creates inside the given folder


_READ0 = _Io("read", 0, ("filepath_or_buffer", "path", "path_or_buf", "io", "file", "fname", "f", "fp"))
_WRITE0 = _Io("write", 0, ("path_or_buf", "path", "excel_writer", "file", "fname", "filename", "fp"))

#: Fully qualified functions (after import aliases are applied) -> their path argument(s).
_FUNCTIONS: dict[str, tuple[_Io, ...]] = {
    "numpy.load": (_READ0,), "numpy.loadtxt": (_READ0,), "numpy.genfromtxt": (_READ0,),
    "numpy.fromfile": (_READ0,), "numpy.save": (_WRITE0,), "numpy.savez": (_WRITE0,),
    "numpy.savez_compressed": (_WRITE0,), "numpy.savetxt": (_WRITE0,),
    "torch.load": (_READ0,), "torch.save": (_Io("write", 1, ("f",)),),
    "joblib.load": (_READ0,), "joblib.dump": (_Io("write", 1, ("filename",)),),
    "PIL.Image.open": (_READ0,), "cv2.imread": (_READ0,), "cv2.imwrite": (_WRITE0,),
    "matplotlib.pyplot.savefig": (_WRITE0,), "matplotlib.pyplot.imread": (_READ0,),
    "mlflow.log_artifact": (_Io("read", 0, ("local_path",)),),
    "mlflow.log_artifacts": (_Io("read", 0, ("local_dir",)),),
    "mlflow.set_tracking_uri": (_Io("write", 0, ("uri",)),),
    "mlflow.create_experiment": (_Io("write", None, ("artifact_location",)),),
    "shutil.copy": (_Io("read", 0, ("src",)), _Io("write", 1, ("dst",))),
    "shutil.copy2": (_Io("read", 0, ("src",)), _Io("write", 1, ("dst",))),
    "shutil.copyfile": (_Io("read", 0, ("src",)), _Io("write", 1, ("dst",))),
    "shutil.copytree": (_Io("read", 0, ("src",)), _Io("write", 1, ("dst",))),
    "shutil.move": (_Io("read", 0, ("src",)), _Io("write", 1, ("dst",))),
    "papermill.execute_notebook": (_Io("read", 0, ("input_path",)), _Io("write", 1, ("output_path",))),
    "matplotlib.pyplot.imsave": (_WRITE0,), "pandas.ExcelWriter": (_WRITE0,),
    "torch.jit.load": (_READ0,), "torch.jit.save": (_Io("write", 1, ("f",)),),
    "safetensors.torch.load_file": (_Io("read", 0, ("filename",)),),
    "safetensors.torch.save_file": (_Io("write", 1, ("filename",)),),
    "skops.io.load": (_READ0,), "skops.io.dump": (_Io("write", 1, ("file",)),),
    "onnx.load": (_READ0,), "onnx.save": (_Io("write", 1, ("f",)),),
    "keras.models.load_model": (_READ0,), "tensorflow.keras.models.load_model": (_READ0,),
    "xarray.open_dataset": (_READ0,), "scipy.io.loadmat": (_READ0,), "scipy.io.savemat": (_WRITE0,),
    "pyarrow.parquet.read_table": (_Io("read", 0, ("source",)),),
    "pyarrow.parquet.write_table": (_Io("write", 1, ("where",)),),
    "pyarrow.csv.read_csv": (_Io("read", 0, ("input_file",)),),
    "torch.utils.tensorboard.SummaryWriter": (_Io("write", 0, ("log_dir",)),),
    "tensorboardX.SummaryWriter": (_Io("write", 0, ("log_dir",)),),
    "sacred.observers.FileStorageObserver": (_Io("write", 0, ("basedir",)),),
    "transformers.TrainingArguments": (_Io("write", 0, ("output_dir",)),),
    "wandb.init": (_Io("write", None, ("dir",), default=".", subfolder="wandb"),),
    "hydra.main": (_Io("write", None, (), default="outputs"), _Io("write", None, (), default="multirun")),
    # writers configured with a location rather than opened: callbacks and record writers
    **{f"{keras}.callbacks.{name}": (io,)
       for keras in ("keras", "tensorflow.keras", "tf_keras")
       for name, io in (("ModelCheckpoint", _Io("write", 0, ("filepath",))),
                        ("BackupAndRestore", _Io("write", 0, ("backup_dir",))),
                        ("CSVLogger", _Io("write", 0, ("filename",))),
                        ("TensorBoard", _Io("write", 0, ("log_dir",), default="logs")))},
    **{f"{pl}.callbacks.ModelCheckpoint": (_Io("write", None, ("dirpath",)),)
       for pl in ("lightning.pytorch", "pytorch_lightning", "lightning")},
    "tensorflow.io.TFRecordWriter": (_Io("write", 0, ("path",)),),
    "tensorflow.summary.create_file_writer": (_Io("write", 0, ("logdir",)),),
}
#: Lightning loggers write ``<save_dir>/<name>/version_N`` (``name`` defaults per logger).
_LOGGERS = {"CSVLogger": "lightning_logs", "TensorBoardLogger": "lightning_logs"}
#: Function name prefixes (pandas.read_csv, pandas.read_parquet, ...).
_PREFIXES: tuple[tuple[str, _Io], ...] = (("pandas.read_", _READ0), ("polars.read_", _READ0),
                                         ("polars.scan_", _READ0))
#: Methods recognised on any object: DataFrame.to_csv, Figure.savefig, Image.save ...
_METHODS: dict[str, _Io] = {
    **{f"to_{fmt}": _WRITE0 for fmt in ("csv", "parquet", "json", "excel", "pickle", "feather", "hdf",
                                        "stata", "orc", "xml", "html", "latex", "markdown")},
    "savefig": _WRITE0, "save": _WRITE0, "write_csv": _WRITE0, "write_parquet": _WRITE0,
    "save_pretrained": _Io("write", 0, ("save_directory",)),
}
#: pathlib methods, recognised when the receiver folds to a path.
_PATH_METHODS = {"read_text": "read", "read_bytes": "read", "write_text": "write", "write_bytes": "write"}
_OPEN_FUNCTIONS = frozenset({"open", "io.open", "codecs.open", "h5py.File", "gzip.open", "bz2.open",
                             "lzma.open", "zipfile.ZipFile", "tarfile.open"})
#: Names a call must end with to be worth walking (a cheap text filter before the AST walk).
_CALL_NAMES = frozenset(
    {name.rsplit(".", 1)[-1] for name in [*_FUNCTIONS, *_OPEN_FUNCTIONS]}
    | set(_METHODS) | set(_PATH_METHODS) | {"CSVLogger", "TensorBoardLogger", "chdir", CD_CALL}
)
_CALLED = re.compile(r"([A-Za-z_]\w*)\s*\(")


def open_direction(mode: Any) -> str:
    """read, write or unknown for an ``open()`` mode (``'r'`` when none is given)."""
    if not isinstance(mode, str):
        return "unknown"
    if "+" in mode:
        return "unknown" if "r" in mode else "write"
    return "write" if any(c in mode for c in "wax") else "read"


# --- IPython masking ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class MaskedSource:
    """Python text with IPython syntax replaced line for line; ``cell_magic`` when skipped."""

    text: str
    masked_lines: int
    magic_refs: tuple[tuple[str, str, int], ...]  # (raw, direction, line) from %run, %%writefile


def universal_newlines(source: str) -> str:
    """``source`` with ``\r\n`` and lone ``\r`` as ``\n``: ast counts a lone ``\r`` as a line
    break, so line numbers only match ``split("\n")`` once the text agrees."""
    return source.replace("\r\n", "\n").replace("\r", "\n") if "\r" in source else source


def mask_ipython(source: str, keep_timed: bool = True) -> MaskedSource:
    """Replace magics, shell escapes and ``?`` help with Python that parses, keeping line numbers.

    ``%%cell`` magics whose body is not Python blank the whole cell; ``x = !cmd`` keeps the
    assignment (to a placeholder) so ``x`` is known to be rebound; ``%time stmt`` keeps ``stmt``
    unless ``keep_timed`` is false.
    """
    lines = source.split("\n")
    refs: list[tuple[str, str, int]] = []
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is not None and lines[first].lstrip().startswith("%%"):
        name, _, args = lines[first].lstrip()[2:].partition(" ")
        if name == "writefile":
            target = [a for a in args.split() if not a.startswith("-")]
            if target:
                refs.append((target[0], "write", first + 1))
        if name not in _PYTHON_CELL_MAGICS:
            return MaskedSource("\n" * (len(lines) - 1), len(lines), tuple(refs))
        lines[first] = ""
    masked = 0
    continuation = False
    previous = ""  # the last code line: a masked line may not be indented deeper than it allows
    for i, line in enumerate(lines):
        stripped = line.lstrip()
        indent = _masked_indent(line[: len(line) - len(stripped)], previous)
        if continuation:
            lines[i] = ""
        elif keep_timed and not line.rstrip().endswith("\\") and (timed := _TIMED.match(stripped)) is not None:
            lines[i] = f"{indent}{timed['stmt']}"
        elif (cd := re.match(r"%cd\s+([^-\s].*?)\s*$", stripped)) is not None:
            target = cd.group(1).strip("'\"")
            lines[i] = f"{indent}{CD_CALL}({target!r})"
        elif stripped.startswith(("%", "!")):
            refs.extend(_line_magic_refs(stripped, i + 1))
            lines[i] = f"{indent}pass"
        elif match := _ASSIGNED_ESCAPE.match(stripped):
            lines[i] = f"{indent}{match['target']} = {MAGIC_PLACEHOLDER}"
        elif _HELP.match(stripped.rstrip()):
            lines[i] = f"{indent}pass"
        else:
            if stripped and not stripped.startswith("#"):
                previous = line
            continue
        masked += 1
        continuation = line.rstrip().endswith("\\")
    return MaskedSource("\n".join(lines), masked, tuple(refs))


def _masked_indent(indent: str, previous: str) -> str:
    """``indent``, unless it is deeper than the code before it allows (IPython accepts that)."""
    before = previous[: len(previous) - len(previous.lstrip())]
    if len(indent) <= len(before) or previous.rstrip().endswith(":"):
        return indent
    return before


def _line_magic_refs(stripped: str, line: int) -> list[tuple[str, str, int]]:
    """``%run script.py`` reads a file; other line magics name none we can trust."""
    words = stripped.lstrip("%").split()
    if len(words) >= 2 and words[0] in ("run", "load"):
        target = next((w for w in words[1:] if not w.startswith("-")), None)
        if target:
            return [(target, "read", line)]
    return []


# --- folding expressions to constant values -------------------------------------------------

def _product(parts: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    """Every combination of the parts' candidate values, capped at MAX_VALUES."""
    return tuple(itertools.islice(itertools.product(*parts), MAX_VALUES))


class _Folder:
    """Folds expressions to their possible constant values; () means unknown."""

    def __init__(self, aliases: dict[str, str], env: dict[str, tuple[Any, ...]]):
        self.aliases = aliases
        self.env = env

    def qualname(self, node: ast.AST) -> str | None:
        """``pd.read_csv`` -> ``pandas.read_csv`` for name/attribute chains, else None."""
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = self.qualname(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    def fold(self, node: ast.AST) -> tuple[Any, ...]:
        """The possible constant values of ``node``."""
        if isinstance(node, ast.Constant):
            return (node.value,) if isinstance(node.value, (str, int, float)) else ()
        if isinstance(node, ast.Name):
            return self.env.get(node.id, ())
        if isinstance(node, ast.JoinedStr):
            return self._fold_fstring(node)
        if isinstance(node, ast.BinOp):
            return self._fold_binop(node)
        if isinstance(node, ast.Call):
            return self._fold_call(node)
        if isinstance(node, ast.Attribute) and node.attr in ("parent", "name", "stem", "suffix"):
            return tuple(_path_attribute(v, node.attr) for v in self.fold(node.value) if isinstance(v, str))
        return ()

    def _fold_fstring(self, node: ast.JoinedStr) -> tuple[Any, ...]:
        parts: list[tuple[Any, ...]] = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append((str(value.value),))
                continue
            if not isinstance(value, ast.FormattedValue):
                return ()
            spec = self.fold(value.format_spec) if value.format_spec else ("",)
            candidates = self.fold(value.value)
            if not candidates or len(spec) != 1:
                return ()
            formatted = tuple(t for v in candidates
                              if (t := _format(v, value.conversion, spec[0])) is not None)
            if not formatted:
                return ()
            parts.append(formatted)
        return tuple("".join(combo) for combo in _product(parts))

    def _fold_binop(self, node: ast.BinOp) -> tuple[Any, ...]:
        left, right = self.fold(node.left), self.fold(node.right)
        if not left or not right:
            return ()
        out = []
        for a, b in _product([left, right]):
            if isinstance(node.op, ast.Div) and isinstance(a, PathStr) and isinstance(b, str):
                out.append(PathStr(posixpath.join(a, b)))
            elif isinstance(node.op, ast.Add) and isinstance(a, str) and isinstance(b, str):
                out.append(a + b)
            elif isinstance(node.op, ast.Mod) and isinstance(a, str) and "%(" not in a:
                try:
                    out.append(a % b)
                except (TypeError, ValueError):
                    return ()
            else:
                return ()
        return tuple(out)

    def _fold_call(self, node: ast.Call) -> tuple[Any, ...]:
        func = node.func
        name = self.qualname(func)
        if name in ("pathlib.Path", "pathlib.PurePath", "pathlib.PosixPath", "pathlib.PurePosixPath",
                    "os.path.join", "posixpath.join"):
            if node.keywords or not node.args:
                return (PathStr("."),) if name.startswith("pathlib") and not node.args else ()
            parts = [self.fold(a) for a in node.args]
            if not all(parts) or not all(isinstance(v, str) for p in parts for v in p):
                return ()
            joined = tuple(posixpath.join(*combo) for combo in _product(parts))
            return tuple(PathStr(j) for j in joined) if name.startswith("pathlib") else joined
        if name in ("str", "os.fspath", "os.path.normpath", "os.path.abspath") and len(node.args) == 1:
            return tuple(str(v) for v in self.fold(node.args[0]) if isinstance(v, str))
        if name in ("os.path.dirname", "os.path.basename") and len(node.args) == 1:
            pick = posixpath.dirname if name.endswith("dirname") else posixpath.basename
            return tuple(pick(v) for v in self.fold(node.args[0]) if isinstance(v, str))
        if isinstance(func, ast.Attribute):
            return self._fold_method(func, node)
        return ()

    def _fold_method(self, func: ast.Attribute, node: ast.Call) -> tuple[Any, ...]:
        receivers = self.fold(func.value)
        if not receivers:
            return ()
        args = [self.fold(a) for a in node.args]
        if not all(args) or node.keywords:
            return ()
        out: list[Any] = []
        for receiver, combo in _product([receivers, _product(args) or ((),)]):
            value = _path_method(receiver, func.attr, combo)
            if value is None:
                return ()
            out.append(value)
        return tuple(out)


def _format(value: Any, conversion: int, spec: Any) -> str | None:
    """``f"{value!r:spec}"`` for a constant; None when the spec does not apply."""
    if not isinstance(spec, str):
        return None
    if conversion == ord("r"):
        value = repr(value)
    elif conversion in (ord("s"), ord("a")):
        value = str(value)
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return None


def _path_attribute(value: str, attr: str) -> str:
    if attr == "parent":
        return PathStr(posixpath.dirname(value.rstrip("/")) or ".")
    if attr == "name":
        return posixpath.basename(value)
    stem, suffix = posixpath.splitext(posixpath.basename(value))
    return stem if attr == "stem" else suffix


def _path_method(receiver: Any, method: str, args: tuple[Any, ...]) -> Any:
    """The result of a pure string/path method on constants, or None when not modelled."""
    if not isinstance(receiver, str) or not all(isinstance(a, (str, int, float)) for a in args):
        return None
    if method == "joinpath" and all(isinstance(a, str) for a in args):
        return PathStr(posixpath.join(receiver, *args))
    if method == "with_suffix" and len(args) == 1:
        return PathStr(posixpath.splitext(receiver)[0] + str(args[0]))
    if method == "with_name" and len(args) == 1:
        return PathStr(posixpath.join(posixpath.dirname(receiver), str(args[0])))
    if method in ("resolve", "absolute", "as_posix", "expanduser") and not args:
        return receiver
    if method == "format" and not isinstance(receiver, PathStr) and not re.search(r"\{[^}]*[.\[]", receiver):
        try:
            return receiver.format(*args)
        except (IndexError, KeyError, ValueError):
            return None
    return None


# --- the analysis ---------------------------------------------------------------------------

class CodeAnalyzer:
    """Analyse sources in order, sharing imports and module-level constants between them."""

    def __init__(self, file_path: str | None = None) -> None:
        """``file_path``: where the analysed script is, absolute, so ``__file__``-relative paths
        fold to real locations (a path above the crawl root then stays unresolved, not guessed)."""
        self.facts = CodeFacts()
        self._aliases: dict[str, str] = {}
        self._env: dict[str, tuple[Any, ...]] = {"__file__": (file_path,)} if file_path else {}
        self._seen_imports: set[str] = set()
        self._seen_refs: set[FileRef] = set()
        self._cell: int | None = None
        self._lines: list[str] = []
        self._line_offset = 0  # lines before the current cell in a joined parse
        self._cwd: str | None = None  # relative to the starting directory; UNKNOWN_CWD after a chdir we cannot fold
        self._call_names = set(_CALL_NAMES)  # grows with aliases: ``from joblib import dump as jd``

    def add_cells(self, cells: list[tuple[int, str]], parse_all: bool = False) -> None:
        """Analyse notebook cells in order, parsed as one module when they allow it.

        Unless ``parse_all``, cells that can affect no import or reference are not parsed at
        all (see ``_relevant``); their syntax errors then go unreported.

        ``ast.parse`` has a high fixed cost per call, so the cells are joined (IPython syntax
        masked first) with a ``pass`` line between them, which stops a cell's open bracket or
        trailing backslash from swallowing the next one.  If the joined text does not parse,
        each cell is parsed on its own and the broken ones are reported.
        """
        texts, starts, magic_refs, masked_lines, line = [], [], [], 0, 1
        cells = self._relevant(cells) if not parse_all else cells
        for cell, source in cells:
            source = universal_newlines(source)
            if _MAYBE_IPYTHON.search(source):
                masked = mask_ipython(source)
                source, masked_lines = masked.text, masked_lines + masked.masked_lines
                magic_refs += [(cell, ref) for ref in masked.magic_refs]
            starts.append(line)
            texts.append(source)
            line += source.count("\n") + 2
        joined = "\npass\n".join(texts)
        try:
            tree = ast.parse(joined)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            for cell, source in cells:
                self.add_source(source, cell)
            return
        self.facts.masked_lines += masked_lines
        for cell, (raw, direction, ref_line) in magic_refs:
            self._add_ref(raw, direction, "%magic", cell, ref_line)
        self._lines = joined.split("\n")
        for stmt in tree.body:
            index = bisect.bisect_right(starts, stmt.lineno) - 1
            if stmt.lineno >= starts[index] + texts[index].count("\n") + 1:
                continue  # a separator
            self._cell, self._line_offset = cells[index][0], starts[index] - 1
            self._visit_top(stmt)
        self._line_offset = 0

    def _relevant(self, cells: list[tuple[int, str]]) -> list[tuple[int, str]]:
        """The cells worth parsing: imports, I/O-named calls, magics, and the cells assigning
        names that a later kept cell uses (walked backwards, so chains of constants stay)."""
        needed: set[str] = set()
        kept = []
        for cell, source in reversed(cells):
            if (_IMPORT.search(source) or _MAYBE_IPYTHON.search(source)
                    or any(n in self._call_names or n.startswith(("read_", "scan_"))
                           for n in _CALLED.findall(source))
                    or (needed and not needed.isdisjoint(_assigned_names(source)))):
                kept.append((cell, source))
                needed.update(_IDENTIFIER.findall(source))
        return kept[::-1]

    def add_source(self, source: str, cell: int | None = None) -> None:
        """Analyse one source (a code cell or a whole script); a syntax error is reported."""
        source = universal_newlines(source)
        tree, masked = self._parse(source, cell)
        if tree is None:
            return
        for raw, direction, line in masked.magic_refs if masked else ():
            self._add_ref(raw, direction, "%magic", cell, line)
        self._cell, self._line_offset = cell, 0
        self._lines = (masked.text if masked else source).split("\n")
        for stmt in tree.body:
            self._visit_top(stmt)

    def _visit_top(self, stmt: ast.stmt) -> None:
        """Visit one top-level statement; one too deeply nested to fold is reported, not fatal."""
        try:
            self._visit_stmt(stmt, self._env)
        except RecursionError:
            line = stmt.lineno - self._line_offset
            self.facts.problems.append(CodeProblem(self._cell, line, "too deeply nested to analyse"))

    def _parse(self, source: str, cell: int | None) -> tuple[ast.Module | None, MaskedSource | None]:
        try:
            return ast.parse(source), None
        except SyntaxError:
            pass
        except (ValueError, RecursionError, MemoryError) as exc:  # NUL bytes, absurd nesting
            self.facts.problems.append(CodeProblem(cell, None, f"cannot parse: {type(exc).__name__}: {exc}"))
            return None, None
        masked = mask_ipython(source)
        try:
            tree = ast.parse(masked.text)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            tree = None
        if tree is None and cell is not None:  # a notebook: automagic lines (``cd ..``) are magics
            masked = mask_ipython("\n".join(_AUTOMAGIC.sub(r"\1%\2", line) for line in source.split("\n")))
        self.facts.masked_lines += masked.masked_lines
        try:
            return tree or ast.parse(masked.text), masked
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            line = getattr(exc, "lineno", None)
            self.facts.problems.append(CodeProblem(cell, line, f"syntax error: {getattr(exc, 'msg', exc)}"))
            return None, masked

    def _visit_block(self, body: list[ast.stmt], env: dict[str, tuple[Any, ...]]) -> None:
        for stmt in body:
            self._visit_stmt(stmt, env)

    def _visit_stmt(self, stmt: ast.stmt, env: dict[str, tuple[Any, ...]]) -> None:
        folder = _Folder(self._aliases, env)
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            self._record_import(stmt)
            return
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for decorator in stmt.decorator_list:
                self._scan_calls(decorator, folder)
            self._visit_block(stmt.body, _scope_without_params(stmt, env))
            return
        if not hasattr(stmt, "body") and not hasattr(stmt, "cases"):
            self._scan_calls(stmt, folder)
        else:  # a compound statement: its header now, its blocks statement by statement
            for _, value in ast.iter_fields(stmt):
                if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                    continue
                for node in value if isinstance(value, list) else [value]:
                    if isinstance(node, ast.AST):
                        self._scan_calls(node, folder)
        _bind(stmt, folder, env)
        for name in ("body", "orelse", "finalbody"):
            self._visit_block(getattr(stmt, name, []) or [], env)
        for handler in getattr(stmt, "handlers", []) or []:
            self._visit_block(handler.body, env)
        for case in getattr(stmt, "cases", []) or []:
            self._visit_block(case.body, env)

    def _record_import(self, stmt: ast.Import | ast.ImportFrom) -> None:
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                self._add_import(alias.name)
                if alias.asname:
                    self._aliases[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    self._aliases[top] = top
            return
        if stmt.level or not stmt.module:
            return
        self._add_import(stmt.module)
        for alias in stmt.names:
            if alias.name != "*":
                self._aliases[alias.asname or alias.name] = f"{stmt.module}.{alias.name}"
                if alias.asname and alias.name in self._call_names:
                    self._call_names.add(alias.asname)

    def _add_import(self, module: str) -> None:
        if module not in self._seen_imports:
            self._seen_imports.add(module)
            self.facts.imports.append(module)

    def _scan_calls(self, node: ast.AST, folder: _Folder) -> None:
        if not self._may_call_io(node):
            return
        for sub in _calls_in(node):
            if folder.qualname(sub.func) in _CHDIR_CALLS:
                self._change_directory(sub, folder)
                continue
            for raw, io, call, relative in self._match_call(sub, folder):
                self._add_ref(raw, io, call, self._cell, sub.lineno - self._line_offset, relative)

    def _change_directory(self, call: ast.Call, folder: _Folder) -> None:
        """Follow ``os.chdir(x)``/``%cd x``; a target that does not fold makes the cwd unknown."""
        values = folder.fold(call.args[0]) if call.args else ()
        if len(values) != 1 or not isinstance(values[0], str) or self._cwd == UNKNOWN_CWD:
            self._cwd = UNKNOWN_CWD
            return
        target = str(values[0])
        self._cwd = posixpath.normpath(target if posixpath.isabs(target)
                                       else posixpath.join(self._cwd or ".", target))

    def _may_call_io(self, node: ast.AST) -> bool:
        """Whether the node's text calls anything named like an I/O call (walking is costly)."""
        start, end = getattr(node, "lineno", None), getattr(node, "end_lineno", None)
        if start is None or end is None:
            return True
        text = self._lines[start - 1] if start == end else "\n".join(self._lines[start - 1:end])
        return any(name in self._call_names or name.startswith(("read_", "scan_"))
                   for name in _CALLED.findall(text))

    def _match_call(self, call: ast.Call, folder: _Folder) -> Iterator[tuple[str, str, str, bool]]:
        name = folder.qualname(call.func)
        if name in _OPEN_FUNCTIONS:
            mode = _argument(call, _Io("read", 1, ("mode",)))
            modes = folder.fold(mode) if mode is not None else ("r",)
            direction = open_direction(modes[0]) if len(set(modes)) == 1 else "unknown"
            yield from ((raw, direction, name, False) for raw in _path_values(call, _READ0, folder))
            return
        if name == "hydra.main":
            yield from _hydra_config(call, folder)
        is_lightning = name is not None and name.startswith(("lightning", "pytorch_lightning"))
        if is_lightning and name.rsplit(".", 1)[-1] in _LOGGERS:
            yield from _logger_dir(call, name, folder)
            return
        if isinstance(call.func, ast.Attribute) and name not in _FUNCTIONS:
            path_refs = _path_receiver_refs(call, call.func, folder)
            if path_refs is not None:
                yield from path_refs
                return
        specs = _FUNCTIONS.get(name or "") or next(
            ((io,) for prefix, io in _PREFIXES if name and name.startswith(prefix)), None)
        if specs is None and isinstance(call.func, ast.Attribute):
            method = _METHODS.get(call.func.attr)
            specs = (method,) if method else None
        for io in specs or ():
            for raw in _path_values(call, io, folder):
                yield raw, io.direction, name or f".{call.func.attr}", False  # type: ignore[union-attr]

    def _add_ref(self, raw: str, direction: str, call: str, cell: int | None, line: int,
                 relative: bool = False) -> None:
        moved = self._cwd if self._cwd not in (None, ".") and not relative and not posixpath.isabs(raw) else None
        ref = FileRef(raw, direction, call, cell, line, relative, moved)
        if ref not in self._seen_refs:
            self._seen_refs.add(ref)
            self.facts.references.append(ref)


def _path_receiver_refs(call: ast.Call, func: ast.Attribute,
                        folder: _Folder) -> list[tuple[str, str, str, bool]] | None:
    """``Path(x).read_text()``, ``p.open("w")``: pathlib I/O on a receiver that folds to a path."""
    if func.attr not in _PATH_METHODS and func.attr != "open":
        return None
    receivers = folder.fold(func.value)
    if not receivers or not all(isinstance(r, PathStr) for r in receivers):
        return None
    direction = _PATH_METHODS.get(func.attr)
    if direction is None:
        mode = _argument(call, _Io("read", 0, ("mode",)))
        modes = folder.fold(mode) if mode is not None else ("r",)
        direction = open_direction(modes[0]) if len(set(modes)) == 1 else "unknown"
    return [(str(r), direction, f"pathlib.Path.{func.attr}", False) for r in receivers]


def _calls_in(node: ast.AST) -> Iterator[ast.Call]:
    """Every call inside ``node`` (a leaner ``ast.walk`` that skips leaves)."""
    stack: list[Any] = [node]
    while stack:
        current = stack.pop()
        if not isinstance(current, ast.AST) or isinstance(current, _LEAVES):
            continue
        if isinstance(current, ast.Call):
            yield current
        for name in current._fields:
            value = getattr(current, name, None)
            if isinstance(value, list):
                stack.extend(value)
            elif value is not None:
                stack.append(value)


_LEAVES = (ast.Name, ast.Constant, ast.expr_context, ast.operator, ast.unaryop, ast.cmpop, ast.boolop)


def _argument(call: ast.Call, io: _Io) -> ast.expr | None:
    """The argument node at ``io``'s position or keyword."""
    for keyword in call.keywords:
        if keyword.arg in io.keywords:
            return keyword.value
    if io.position is None or io.position >= len(call.args):
        return None
    if not any(isinstance(a, ast.Starred) for a in call.args[: io.position + 1]):
        return call.args[io.position]
    return None


def _path_values(call: ast.Call, io: _Io, folder: _Folder) -> list[str]:
    """The constant strings the path argument can hold (URIs of tracking stores unwrapped)."""
    node = _argument(call, io)
    if node is None:
        values = [io.default] if io.default is not None else []
    else:
        values = [v for v in folder.fold(node) if isinstance(v, str) and v.strip()]
    values = [_strip_store_uri(v) for v in values]
    return [posixpath.join(v, io.subfolder) for v in values] if io.subfolder else values


def _strip_store_uri(value: str) -> str:
    """``file:./mlruns`` -> ``./mlruns``; ``sqlite:///mlflow.db`` -> ``mlflow.db``."""
    for prefix in ("file://", "file:", "sqlite:///"):
        if value.startswith(prefix):
            return value[len(prefix):] or "."
    return value


def _hydra_config(call: ast.Call, folder: _Folder) -> Iterator[tuple[str, str, str, bool]]:
    """``@hydra.main(config_path=..., config_name=...)`` reads ``<path>/<name>.yaml`` beside the file."""
    path = _argument(call, _Io("read", None, ("config_path",)))
    name = _argument(call, _Io("read", None, ("config_name",)))
    paths = folder.fold(path) if path is not None else ()
    names = folder.fold(name) if name is not None else ()
    for directory, config in _product([paths, names]) if paths and names else ():
        if isinstance(directory, str) and isinstance(config, str):
            leaf = config if config.endswith((".yaml", ".yml")) else f"{config}.yaml"
            yield posixpath.join(directory, leaf), "read", "hydra.main", True


def _logger_dir(call: ast.Call, name: str, folder: _Folder) -> Iterator[tuple[str, str, str, bool]]:
    """``CSVLogger(save_dir, name="lightning_logs")`` writes ``<save_dir>/<name>``."""
    save_dir = _argument(call, _Io("write", 0, ("save_dir",)))
    sub = _argument(call, _Io("write", 1, ("name",)))
    dirs = folder.fold(save_dir) if save_dir is not None else ()
    subs = folder.fold(sub) if sub is not None else (_LOGGERS[name.rsplit(".", 1)[-1]],)
    for directory, leaf in _product([dirs, subs]) if dirs and subs else ():
        if isinstance(directory, str) and isinstance(leaf, str):
            yield posixpath.join(directory, leaf), "write", name, False


def _assigned_names(source: str) -> set[str]:
    """Names a source may bind to a constant (a superset: every identifier on the left of an
    assignment whose right side has literals, names or path building in it)."""
    names: set[str] = set()
    for match in _ASSIGNED.finditer(source):
        if match["with"] or _CONSTANT_LIKE.search(match["rhs"]):
            names.update(_IDENTIFIER.findall(match["loop"] or match["with"] or match["lhs"] or ""))
    return names


def _scope_without_params(stmt: ast.stmt, env: dict[str, tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
    """A function's own scope: the enclosing constants minus the names its parameters shadow."""
    scope = dict(env)
    args = getattr(stmt, "args", None)
    if args is not None:
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if arg is not None:
                scope.pop(arg.arg, None)
    return scope


def _bind(stmt: ast.stmt, folder: _Folder, env: dict[str, tuple[Any, ...]]) -> None:
    """Update the known constants after ``stmt`` (assignments, loops over literals, ``with as``)."""
    if isinstance(stmt, ast.Assign):
        for target in stmt.targets:
            _bind_target(target, stmt.value, folder, env)
    elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
        _bind_target(stmt.target, stmt.value, folder, env)
    elif isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name):
        values = folder.fold(ast.BinOp(ast.Name(stmt.target.id, ast.Load()), stmt.op, stmt.value))
        _set(env, stmt.target.id, values)
    elif isinstance(stmt, (ast.For, ast.AsyncFor)):
        _bind_loop(stmt, folder, env)
    elif isinstance(stmt, (ast.With, ast.AsyncWith)):
        for item in stmt.items:
            for name in _target_names(item.optional_vars):
                env.pop(name, None)


def _bind_target(target: ast.expr, value: ast.expr, folder: _Folder, env: dict[str, tuple[Any, ...]]) -> None:
    if isinstance(target, ast.Name):
        _set(env, target.id, folder.fold(value))
    elif isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List)) \
            and len(target.elts) == len(value.elts):
        for sub_target, sub_value in zip(target.elts, value.elts, strict=True):
            _bind_target(sub_target, sub_value, folder, env)
    else:
        for name in _target_names(target):
            env.pop(name, None)


def _bind_loop(stmt: ast.For | ast.AsyncFor, folder: _Folder, env: dict[str, tuple[Any, ...]]) -> None:
    names = _target_names(stmt.target)
    if isinstance(stmt.target, ast.Name) and isinstance(stmt.iter, (ast.List, ast.Tuple, ast.Set)):
        values: list[Any] = []
        for element in stmt.iter.elts:
            folded = folder.fold(element)
            if not folded:
                break
            values.extend(folded)
        else:
            _set(env, stmt.target.id, tuple(values[:MAX_VALUES]))
            return
    for name in names:
        env.pop(name, None)


def _set(env: dict[str, tuple[Any, ...]], name: str, values: tuple[Any, ...]) -> None:
    if values:
        env[name] = values
    else:
        env.pop(name, None)


def _target_names(target: ast.AST | None) -> list[str]:
    if target is None:
        return []
    return [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]


def analyze_sources(sources: Iterable[tuple[int, str]]) -> CodeFacts:
    """Analyse ``(cell, source)`` pairs in order; constants flow from one source to the next."""
    analyzer = CodeAnalyzer()
    analyzer.add_cells(list(sources))
    return analyzer.facts


def is_uri(raw: str) -> bool:
    """True for ``s3://``/``http:``-style references that name no local file."""
    return bool(_URI_SCHEME.match(raw)) and not re.match(r"^[A-Za-z]:[\\/]", raw)


def parse_literal_assignments(source: str) -> tuple[dict[str, Any], dict[str, str], str | None]:
    """Names assigned in a parameters cell: ``(literals, expressions, problem)``.

    Values are read with :func:`ast.literal_eval` on the parsed node (never evaluated as
    code); an assignment that is not a literal keeps its source text in ``expressions``.
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        try:
            tree = ast.parse(mask_ipython(source, keep_timed=False).text)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            return {}, {}, f"parameters cell does not parse: {getattr(exc, 'msg', exc)}"
    literals: dict[str, Any] = {}
    expressions: dict[str, str] = {}
    for stmt in tree.body:
        target, value = _single_assignment(stmt)
        if target is None or value is None:
            continue
        try:
            literals[target] = ast.literal_eval(value)
            expressions.pop(target, None)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            literals.pop(target, None)
            expressions[target] = ast.get_source_segment(source, value) or ast.unparse(value)
    return literals, expressions, None


def _single_assignment(stmt: ast.stmt) -> tuple[str | None, ast.expr | None]:
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        return stmt.targets[0].id, stmt.value
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
        return stmt.target.id, stmt.value
    return None, None
