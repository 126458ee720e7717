"""Environment files (pip requirements, pip freeze, conda, MLflow python_env) -> the owning run's
environment artifacts, with the packages they pin as facts.

    <run folder of any crawler>/              the innermost enclosing folder unit that is a run
      requirements.txt, requirements-*.txt    pip requirements "name[extra] >=1,<2 ; marker",
                                              -r/-c includes, -e and URL requirements
      *freeze*.txt                            `pip freeze` output ("a==1.2", "a @ file://...")
      environment.yml, conda.yaml             conda: {name, channels, dependencies:
                                              ["python=3.11", "conda-forge::numpy=1.26", {pip: [...]}]}
      python_env.yaml                         MLflow: {python, build_dependencies, dependencies}
      files/requirements.txt                  (W&B keeps pip freeze output under files/)

Owner: the innermost enclosing folder unit that is one run (``ctx.enclosing_runs``, named by
the crawler that owns the folder).  A file
that no run folder encloses (a project's requirements.txt) yields nothing: the file itself is
in ``files``.  The file is parsed cheaply (line by line or one safe YAML load through the
context's bounded reader); a file that cannot be parsed is still an artifact, with ``problem``
in its facts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import ClassVar

from mlcrawl.api import Artifact, BaseCrawler, Claims, CrawlContext, Options, Record, TooLarge, UnsafeFile, load_yaml

MAX_FILE = 8 << 20  # an environment file larger than this is an artifact with a problem, not parsed
CONDA_NAMES = {
    "environment.yml": "conda",
    "environment.yaml": "conda",
    "conda.yaml": "conda",
    "conda.yml": "conda",
}
MLFLOW_NAMES = {"python_env.yaml": "python_env", "python_env.yml": "python_env"}
_REQUIREMENT = re.compile(
    r"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?P<extras>\[[^\]]*\])?\s*(?P<spec>[^;]*?)\s*(?:;\s*(?P<marker>.*))?"
)
_CONDA = re.compile(r"(?:(?P<channel>[^:\s]+)::)?(?P<name>[A-Za-z0-9_.+-]+)\s*(?P<spec>.*)")
_EGG = re.compile(r"[#&]egg=(?P<name>[A-Za-z0-9._-]+)")
_DIRECT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://|\.{0,2}/")  # a bare URL or path requirement
_ARCHIVE = re.compile(r"(?P<name>[A-Za-z0-9_.]+?)-\d[^/]*\.(?:whl|tar\.gz|zip|tar\.bz2)$")


@dataclass(frozen=True)
class EnvironmentOptions(Options):
    """Options of the environment crawler."""

    attach: bool = True
    """attach environment files to the run whose folder encloses them (off: they stay plain files)"""


class EnvironmentCrawler(BaseCrawler):
    """Environment files, as environment artifacts of the run folder that holds them."""

    name: ClassVar[str] = "environment"
    version: ClassVar[int] = 1
    claims = Claims(files=("requirements*.txt", "*freeze*.txt", "environment.yml", "environment.yaml",
                           "conda.yaml", "conda.yml", "python_env.yaml", "python_env.yml"))
    Options = EnvironmentOptions

    def crawl(self, unit: Path, ctx: CrawlContext) -> Iterator[Record]:
        """One Artifact (role ``environment``) of the owning run; nothing outside a run folder."""
        run_id = owner_run_id(unit, ctx) if ctx.options.get("attach", True) else None
        if run_id is None:
            return
        parsed = parse_environment_file(unit, ctx.relpath(unit), ctx)
        yield Artifact(run_id, parsed.path, role="environment", facts=environment_facts(parsed))


def owner_run_id(unit: Path, ctx: CrawlContext) -> str | None:
    """The run of the innermost enclosing folder unit that is one run (the core names it)."""
    return ctx.enclosing_runs[-1][1] if ctx.enclosing_runs else None


def environment_facts(parsed: EnvironmentFile) -> dict:
    """The artifact facts: kind, python, the pins (name, spec, manager, marker), includes, problem."""
    facts: dict = {"kind": parsed.kind,
                   "packages": [{k: v for k, v in asdict(p).items() if v is not None} for p in parsed.packages]}
    if parsed.python:
        facts["python"] = parsed.python
    if parsed.includes:
        facts["includes"] = list(parsed.includes)
    if parsed.problem:
        facts["problem"] = parsed.problem
    return facts


@dataclass(frozen=True, slots=True)
class PackagePin:
    """One package an environment file names; ``spec`` is the version part as written."""

    name: str
    spec: str | None
    manager: str
    marker: str | None = None


@dataclass(frozen=True, slots=True)
class EnvironmentFile:
    """One parsed environment file.  ``kind``: requirements, pip_freeze, conda, python_env."""

    path: str
    kind: str
    packages: tuple[PackagePin, ...] = ()
    python: str | None = None
    includes: tuple[str, ...] = ()
    problem: str | None = None


def environment_kind(name: str) -> str | None:
    """The kind of environment file a name denotes, or None when it is not one."""
    lower = name.lower()
    if lower in CONDA_NAMES:
        return CONDA_NAMES[lower]
    if lower in MLFLOW_NAMES:
        return MLFLOW_NAMES[lower]
    if lower.endswith(".txt") and "freeze" in lower:
        return "pip_freeze"
    if lower.startswith("requirements") and lower.endswith(".txt"):
        return "requirements"
    return None


def parse_environment_file(path: Path, rel: str, ctx: CrawlContext) -> EnvironmentFile:
    """Read and parse one environment file; problems are reported in ``problem``, never raised."""
    kind = environment_kind(path.name) or "requirements"
    try:
        text = ctx.read_text(path, errors="replace", limit=MAX_FILE)
    except TooLarge:
        return EnvironmentFile(rel, kind, problem=f"larger than {MAX_FILE} bytes, not parsed")
    except (OSError, UnsafeFile) as exc:
        return EnvironmentFile(rel, kind, problem=f"unreadable: {exc}")
    if kind in ("requirements", "pip_freeze"):
        packages, includes = parse_requirements(text.splitlines())
        return EnvironmentFile(rel, kind, packages, includes=includes)
    try:
        data = load_yaml(text)
    except Exception as exc:  # noqa: BLE001 - yaml raises its own hierarchy
        return EnvironmentFile(rel, kind, problem=f"not valid YAML: {' '.join(str(exc).split())}")
    if not isinstance(data, Mapping):
        return EnvironmentFile(rel, kind, problem="not a YAML mapping")
    if kind == "conda":
        return _conda_file(rel, data)
    return _python_env_file(rel, data)


def parse_requirements(
    lines: Iterable[str], manager: str = "pip"
) -> tuple[tuple[PackagePin, ...], tuple[str, ...]]:
    """Pins and included files (``-r``/``-c``) of pip requirement lines (pip freeze output too)."""
    packages: list[PackagePin] = []
    includes: list[str] = []
    for line in _logical_lines(lines):
        if line.startswith(("-r", "--requirement", "-c", "--constraint")):
            includes.append(_option_value(line))
        elif line.startswith(("-e", "--editable")):
            target = _option_value(line)
            packages.append(PackagePin(_name_of_target(target), f"-e {target}", manager))
        elif _DIRECT.match(line):
            packages.append(PackagePin(_name_of_target(line), line, manager))
        elif not line.startswith("-"):  # other options (-i, --hash, --pre...) pin nothing
            pin = _requirement(line, manager)
            if pin is not None:
                packages.append(pin)
    return tuple(packages), tuple(includes)


def normalize_name(name: str) -> str:
    """A package name in PEP 503 form (lower case, runs of ``-_.`` as one ``-``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement(line: str, manager: str) -> PackagePin | None:
    # Per-requirement options such as --hash=sha256:... follow the spec; they are not versions.
    line = " ".join(t for t in line.split(" ") if not t.startswith("--"))
    match = _REQUIREMENT.fullmatch(line.strip())
    if match is None:
        return None
    spec = match["spec"].strip() or None
    return PackagePin(normalize_name(match["name"]), spec, manager, (match["marker"] or "").strip() or None)


def _option_value(line: str) -> str:
    """The value of ``-r file``, ``-rfile``, ``--requirement=file`` or ``--requirement file``."""
    option, sep, rest = line.partition(" ")
    if option.startswith("--"):
        return option.partition("=")[2] or rest.strip()
    return (option[2:] or rest).strip()


def _name_of_target(target: str) -> str:
    """A package name for a URL or path requirement: ``#egg=``, the archive name, or the folder."""
    egg = _EGG.search(target)
    if egg:
        return normalize_name(egg["name"])
    base = PurePosixPath(target.split("#")[0].rstrip("/")).name
    archive = _ARCHIVE.match(base)
    return normalize_name(archive["name"] if archive else base or target)


def _logical_lines(lines: Iterable[str]) -> Iterator[str]:
    """Lines with comments stripped and backslash continuations joined; blank lines dropped."""
    pending = ""
    for raw in lines:
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            yield line
    if pending.strip():
        yield pending.strip()


def _conda_file(rel: str, data: Mapping) -> EnvironmentFile:
    packages: list[PackagePin] = []
    includes: tuple[str, ...] = ()
    python: str | None = None
    for entry in data.get("dependencies") or []:
        if isinstance(entry, Mapping) and isinstance(entry.get("pip"), list):
            pins, includes = parse_requirements(map(str, entry["pip"]))
            packages.extend(pins)
        elif isinstance(entry, str):
            match = _CONDA.fullmatch(entry.strip())
            if match is None:
                continue
            spec = match["spec"].strip() or None
            packages.append(PackagePin(normalize_name(match["name"]), spec, "conda"))
            if match["name"] == "python" and spec:
                python = spec.lstrip("=").strip()
    return EnvironmentFile(rel, "conda", tuple(packages), python, includes)


def _python_env_file(rel: str, data: Mapping) -> EnvironmentFile:
    lines = [str(x) for key in ("build_dependencies", "dependencies") for x in (data.get(key) or [])]
    packages, includes = parse_requirements(lines)
    python = str(data["python"]) if data.get("python") is not None else None
    return EnvironmentFile(rel, "python_env", packages, python, includes)
