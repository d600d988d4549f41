"""Workload traces for the simulator: loading (CSV or JSON Lines) and writing (CSV).

A trace is a list of pods to submit: ``submit_s,cpu,memory_mib,duration_s[,arch][,gpu][,kind][,class]``
(cpu in cores).
``arch`` (amd64/arm64) pins the pod to that architecture; empty means a multi-arch image that runs anywhere.
``kind`` is ``job`` (runs to completion, never disrupted) or ``service`` (a ReplicaSet pod that runs for
``duration_s`` and may be moved). ``class`` names the workload class whose run times our policy learns
(``deployer trace record`` writes it; empty: the class follows from the requests). Called by the
``simulate`` and ``trace record`` commands, the benchmark and the trace generator.
Errors are one line naming ``file:line`` and the field, so a user fixes a 50,000-line trace quickly.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployer.errors import UserError

REQUIRED_FIELDS = ("submit_s", "cpu", "memory_mib", "duration_s")
OPTIONAL_FIELDS = ("arch", "gpu", "kind", "class")
ARCHES = ("amd64", "arm64")
KINDS = ("job", "service")


@dataclass(frozen=True, slots=True)
class TraceJob:
    """One pod of the workload. ``cpu`` is in cores (fractions allowed), stored as millicores."""

    submit_s: float
    cpu_m: int
    memory_mib: int
    duration_s: float
    arch: str | None = None
    gpu: int = 0
    kind: str = "job"
    workload: str = ""  # the ``class`` column

    @property
    def cpu(self) -> float:
        return self.cpu_m / 1000


def _number(raw: Any, field: str, where: str, *, minimum: float, integer: bool = False) -> float:
    if isinstance(raw, bool) or raw is None or (isinstance(raw, str) and not raw.strip()):
        raise UserError(f"{where}: field '{field}' is missing or empty")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise UserError(f"{where}: field '{field}' is not a number: {raw!r}") from None
    if not math.isfinite(value) or value < minimum:
        raise UserError(f"{where}: field '{field}' must be a finite number >= {minimum:g}, got {raw!r}")
    if integer and value != int(value):
        raise UserError(f"{where}: field '{field}' must be a whole number, got {raw!r}")
    return value


def parse_job(row: Mapping[str, Any], where: str) -> TraceJob:
    """One record (a CSV row or a JSON object) to a job; ``where`` is ``file:line`` for messages."""
    unknown = sorted(set(row) - set(REQUIRED_FIELDS) - set(OPTIONAL_FIELDS))
    if unknown:
        allowed = ", ".join(REQUIRED_FIELDS + OPTIONAL_FIELDS)
        raise UserError(f"{where}: unknown field '{unknown[0]}'; allowed: {allowed}")
    submit = _number(row.get("submit_s"), "submit_s", where, minimum=0)
    cpu = _number(row.get("cpu"), "cpu", where, minimum=0.001)
    memory = _number(row.get("memory_mib"), "memory_mib", where, minimum=0, integer=True)
    duration = _number(row.get("duration_s"), "duration_s", where, minimum=0.001)
    arch = row.get("arch") or None
    if arch is not None and arch not in ARCHES:
        raise UserError(f"{where}: field 'arch' must be one of {', '.join(ARCHES)} or empty, got {arch!r}")
    gpu_raw = row.get("gpu")
    gpu = 0 if gpu_raw in (None, "") else int(_number(gpu_raw, "gpu", where, minimum=0, integer=True))
    kind = row.get("kind") or "job"
    if kind not in KINDS:
        raise UserError(f"{where}: field 'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
    workload = str(row.get("class") or "").strip()
    return TraceJob(submit, round(cpu * 1000), int(memory), duration, arch, gpu, kind, workload)


def _csv_records(path: Path, lines: Iterable[str]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        raise UserError(
            f"{path}:1: empty trace; expected a header "
            f"{','.join(REQUIRED_FIELDS)}[,arch][,gpu][,kind][,class]"
        )
    header = [name.strip() for name in header]
    missing = [name for name in REQUIRED_FIELDS if name not in header]
    if missing:
        raise UserError(
            f"{path}:1: header lacks field '{missing[0]}'; expected {','.join(REQUIRED_FIELDS)}..."
        )
    for row in reader:
        where = f"{path}:{reader.line_num}"
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise UserError(f"{where}: expected {len(header)} fields ({','.join(header)}), got {len(row)}")
        yield where, {name: cell.strip() for name, cell in zip(header, row, strict=True)}


def _jsonl_records(path: Path, lines: Iterable[str]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise UserError(
                f"{where}: each line must be a JSON object with submit_s, cpu, memory_mib, duration_s"
            )
        yield where, record


def load_trace(path: Path) -> list[TraceJob]:
    """Read a CSV (``.csv``) or JSON Lines (``.jsonl``/``.json``, or a first line starting with ``{``) trace.

    Jobs are returned in submission order (stable for equal submit times).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such trace file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read trace ({exc})") from None
    lines = text.splitlines()
    is_json = path.suffix in (".jsonl", ".json") or text.lstrip().startswith("{")
    records = _jsonl_records(path, lines) if is_json else _csv_records(path, lines)
    jobs = [parse_job(record, where) for where, record in records]
    if not jobs:
        raise UserError(f"{path}: the trace holds no jobs")
    jobs.sort(key=lambda job: job.submit_s)
    return jobs


def _cell(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def write_trace_csv(path: Path, jobs: Iterable[TraceJob]) -> None:
    """Write jobs with every optional column, in the format ``load_trace`` reads."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow((*REQUIRED_FIELDS, *OPTIONAL_FIELDS))
        for job in jobs:
            writer.writerow(
                (
                    _cell(job.submit_s),
                    _cell(job.cpu),
                    job.memory_mib,
                    _cell(job.duration_s),
                    job.arch or "",
                    job.gpu,
                    job.kind,
                    job.workload,
                )
            )
