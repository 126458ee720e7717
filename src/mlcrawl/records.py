"""The typed records crawlers yield; each record class is one catalog table.

Records are frozen, slotted and flat.  Paths inside records are POSIX paths relative to the
crawl root (the runner adds ``root``, ``crawler`` and ``unit`` columns when it writes them).
Timestamps are timezone-aware datetimes (UTC).  ``dict``/``list`` fields are stored as JSON
text so the plain duckdb CLI can read them with ``->>`` or ``json_extract``.

The catalog derives its tables from these classes (see ``catalog/schema.py``): adding a field
adds a column through a forward migration, so keep field types to the ones mapped there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar


@dataclass(frozen=True, slots=True)
class Run:
    """An experiment run from any tool; ``run_id`` is ``<source>:<tool's own id>``."""

    __table__: ClassVar[str] = "runs"
    run_id: str
    source: str
    source_run_id: str
    experiment: str | None = None
    name: str | None = None
    status: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    user: str | None = None
    git_commit: str | None = None
    parent_run_id: str | None = None
    dir: str | None = None
    group: str | None = None
    lifecycle: str | None = None


@dataclass(frozen=True, slots=True)
class Experiment:
    """An experiment (MLflow experiment, W&B project, Sacred experiment name...)."""

    __table__: ClassVar[str] = "experiments"
    experiment_id: str
    source: str
    name: str | None = None
    lifecycle: str | None = None
    artifact_location: str | None = None
    tags: dict | None = None


@dataclass(frozen=True, slots=True)
class Param:
    """A run parameter; nested keys are dotted.  ``origin`` tells where it came from
    (e.g. ``default``/``injected`` for notebooks, ``override`` for Hydra)."""

    __table__: ClassVar[str] = "params"
    run_id: str
    key: str
    value: str | None
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric point.  ``inferred`` marks values scraped from printed output."""

    __table__: ClassVar[str] = "metrics"
    run_id: str
    key: str
    value: float | None
    step: int | None = None
    timestamp: datetime | None = None
    epoch: int | None = None
    inferred: bool = False


@dataclass(frozen=True, slots=True)
class Tag:
    """A run tag (free text key/value)."""

    __table__: ClassVar[str] = "tags"
    run_id: str
    key: str
    value: str | None


@dataclass(frozen=True, slots=True)
class Artifact:
    """A file that belongs to a run.  ``role``: artifact, checkpoint, model, log, output,
    environment, source, resource, config, dataset_input."""

    __table__: ClassVar[str] = "run_artifacts"
    run_id: str
    path: str
    role: str = "artifact"
    facts: dict | None = None


@dataclass(frozen=True, slots=True)
class Notebook:
    """Facts about one notebook version, read without executing it."""

    __table__: ClassVar[str] = "notebooks"
    path: str
    sha256: str | None = None
    nbformat: int | None = None
    nbformat_minor: int | None = None
    kernel: str | None = None
    language: str | None = None
    language_version: str | None = None
    code_cells: int = 0
    markdown_cells: int = 0
    raw_cells: int = 0
    executed: bool = False
    executed_in_order: bool | None = None
    has_errors: bool = False
    error_name: str | None = None
    error_value: str | None = None
    image_outputs: int = 0
    papermill_input_path: str | None = None
    papermill_output_path: str | None = None
    papermill_start_time: datetime | None = None
    papermill_end_time: datetime | None = None
    papermill_duration: float | None = None
    papermill_exception: bool | None = None
    failed_cells: int | None = None
    run_id: str | None = None
    facts: dict | None = None


@dataclass(frozen=True, slots=True)
class Reference:
    """A file named in code or config: ``direction`` is read, write or unknown."""

    __table__: ClassVar[str] = "references"
    source_path: str
    raw: str
    resolved_path: str | None
    direction: str
    evidence: str
    call: str | None = None
    cell: int | None = None
    line: int | None = None


@dataclass(frozen=True, slots=True)
class Import:
    """A top-level module imported by a notebook or script."""

    __table__: ClassVar[str] = "imports"
    source_path: str
    module: str


@dataclass(frozen=True, slots=True)
class DatasetSchema:
    """Schema of one dataset file version.  ``columns`` is a list of ``{name, type}``."""

    __table__: ClassVar[str] = "dataset_schemas"
    path: str
    format: str
    sha256: str | None = None
    row_count: int | None = None
    columns: list | None = None
    facts: dict | None = None


@dataclass(frozen=True, slots=True)
class Model:
    """A model file read safely (headers and archive listings only, never unpickled)."""

    __table__: ClassVar[str] = "models"
    path: str
    format: str
    sha256: str | None = None
    tensor_count: int | None = None
    parameter_count: int | None = None
    dtypes: list | None = None
    inputs: list | None = None
    outputs: list | None = None
    opset: int | None = None
    metadata: dict | None = None
    warning: str | None = None


@dataclass(frozen=True, slots=True)
class Edge:
    """Declared lineage stated by a tool's own metadata (a DVC stage, an MLflow artifact...).

    ``src``/``dst`` are root-relative paths when their ``*_type`` is ``file``, run ids when
    ``run``, and ``<dvc.yaml path>:<stage>`` when ``stage``.
    """

    __table__: ClassVar[str] = "declared_edges"
    src: str
    dst: str
    relation: str
    evidence: str
    src_type: str = "file"
    dst_type: str = "file"
    confidence: float = 1.0
    sha256: str | None = None
    md5: str | None = None
    facts: dict | None = None


@dataclass(frozen=True, slots=True)
class CrawlError:
    """A problem met while crawling; ``severity`` is ``error`` or ``warning``."""

    __table__: ClassVar[str] = "errors"
    path: str | None
    error_type: str
    message: str
    severity: str = "error"


#: Every record class a crawler may yield, in table-creation order.
RECORD_TYPES: tuple[type, ...] = (
    Run,
    Experiment,
    Param,
    Metric,
    Tag,
    Artifact,
    Notebook,
    Reference,
    Import,
    DatasetSchema,
    Model,
    Edge,
    CrawlError,
)

Record = (
    Run | Experiment | Param | Metric | Tag | Artifact | Notebook | Reference | Import
    | DatasetSchema | Model | Edge | CrawlError
)
