"""The software environment of a run: environment files near its folder and the packages they pin.

    <root>/                           the crawl root: the search stops here
      requirements.txt                pip requirements  "name[extra] >=1,<2 ; marker", -r/-c/-e lines
      environment.yml                 conda: {name, channels, dependencies: ["python=3.11",
                                      "conda-forge::numpy=1.26", {pip: [...]}]}
      project/
        conda.yaml                    (MLflow writes conda.yaml and python_env.yaml too:
        python_env.yaml                {python, build_dependencies, dependencies})
        runs/run-7/                   the run folder: searched first, then each ancestor up to root
          requirements-freeze.txt     `pip freeze` output ("a==1.2", "a @ file://...", "-e git+...#egg=a")

``describe_run_environment`` lists the files found, nearest first, each parsed cheaply (line
by line or one safe YAML load, bounded in size).  A file that cannot be parsed is still listed,
with its ``problem`` set.  Share one EnvironmentCache across runs: a project-level file is then
read once, not once per run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import yaml

MAX_FILE = 8 << 20  # an environment file larger than this is listed, not parsed
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


@dataclass(frozen=True, slots=True)
class PackagePin:
    """One package an environment file names; ``spec`` is the version part as written."""

    name: str
    spec: str | None
    manager: str
    marker: str | None = None


@dataclass(frozen=True, slots=True)
class EnvironmentFile:
    """An environment file near a run.  ``kind``: requirements, pip_freeze, conda, python_env.
    ``distance`` is 0 in the run folder, 1 in its parent, and so on."""

    path: str
    kind: str
    distance: int
    packages: tuple[PackagePin, ...] = ()
    python: str | None = None
    includes: tuple[str, ...] = ()
    problem: str | None = None


@dataclass
class EnvironmentCache:
    """Memo for one crawl: folder -> names of its environment files, file -> parsed content."""

    names_in: dict[Path, tuple[str, ...]] = field(default_factory=dict)
    parsed: dict[Path, EnvironmentFile] = field(default_factory=dict)


def describe_run_environment(
    run_dir: Path,
    root: Path,
    cache: EnvironmentCache | None = None,
    read_bytes: Callable[[Path], bytes] | None = None,
) -> list[EnvironmentFile]:
    """Environment files in ``run_dir`` and its ancestors up to ``root``, nearest first."""
    cache = cache if cache is not None else EnvironmentCache()
    reader = read_bytes or (lambda p: Path(p).read_bytes())
    root = Path(root).absolute()
    found: list[EnvironmentFile] = []
    for distance, folder in enumerate(_folders_up_to(Path(run_dir).absolute(), root)):
        for name in _environment_names(folder, cache):
            path = folder / name
            parsed = cache.parsed.get(path)
            if parsed is None:
                parsed = parse_environment_file(path, _relpath(path, root), reader)
                cache.parsed[path] = parsed
            found.append(replace(parsed, distance=distance))
    return found


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


def parse_environment_file(path: Path, rel: str, read_bytes: Callable[[Path], bytes]) -> EnvironmentFile:
    """Read and parse one environment file; problems are reported in ``problem``, never raised."""
    kind = environment_kind(path.name) or "requirements"
    try:
        if path.stat().st_size > MAX_FILE:
            return EnvironmentFile(rel, kind, 0, problem=f"larger than {MAX_FILE} bytes, not parsed")
        text = read_bytes(path).decode("utf-8-sig", errors="replace")
    except OSError as exc:
        return EnvironmentFile(rel, kind, 0, problem=f"unreadable: {exc}")
    if kind in ("requirements", "pip_freeze"):
        packages, includes = parse_requirements(text.splitlines())
        return EnvironmentFile(rel, kind, 0, packages, includes=includes)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return EnvironmentFile(rel, kind, 0, problem=f"not valid YAML: {exc}")
    if not isinstance(data, Mapping):
        return EnvironmentFile(rel, kind, 0, problem="not a YAML mapping")
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
    return EnvironmentFile(rel, "conda", 0, tuple(packages), python, includes)


def _python_env_file(rel: str, data: Mapping) -> EnvironmentFile:
    lines = [str(x) for key in ("build_dependencies", "dependencies") for x in (data.get(key) or [])]
    packages, includes = parse_requirements(lines)
    python = str(data["python"]) if data.get("python") is not None else None
    return EnvironmentFile(rel, "python_env", 0, packages, python, includes)


def _folders_up_to(start: Path, root: Path) -> list[Path]:
    """``start`` and its ancestors up to ``root`` inclusive (just ``start`` when outside root)."""
    if start != root and root not in start.parents:
        return [start]
    folders = [start]
    while folders[-1] != root:
        folders.append(folders[-1].parent)
    return folders


def _environment_names(folder: Path, cache: EnvironmentCache) -> tuple[str, ...]:
    names = cache.names_in.get(folder)
    if names is None:
        try:
            with os.scandir(folder) as entries:
                names = tuple(sorted(e.name for e in entries if environment_kind(e.name) and e.is_file()))
        except OSError:
            names = ()
        cache.names_in[folder] = names
    return names


def _relpath(path: Path, root: Path) -> str:
    return PurePosixPath(*Path(os.path.relpath(path, root)).parts).as_posix()
