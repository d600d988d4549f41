"""Run times learned from finished pods, per workload class: what lets scale-up wait for room freeing soon.

``RuntimeModel`` is a value: the simulator folds each finished pod into it with ``learn`` (the daemon:
``learn_finished`` on each snapshot) and passes it to ``plan()``. The planner asks ``remaining(model, cls,
elapsed)``: how much longer a running pod of class ``cls`` that has run ``elapsed`` seconds will still
run, at a high quantile of the finished pods of its class that ran at least that long. A class with too
few finished pods (or none that ran this long) has no estimate, and the planner then behaves exactly as
without a model. Pure: no I/O, no clock.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from deployer.core.elasticity.model import Pod

# A label a user may set to name the class of a pod (otherwise derived from its owner and requests).
WORKLOAD_CLASS_LABEL = "deployer.io/workload-class"
# Labels that name the application; job-name and generated suffixes vary per run and are trimmed.
_NAME_LABELS = (WORKLOAD_CLASS_LABEL, "app.kubernetes.io/name", "app", "job-name")
_RUN_SUFFIX = re.compile(r"(-[0-9]{6,}|-[a-z0-9]{5})+$")


@dataclass(frozen=True, slots=True)
class RuntimeModel:
    """The latest ``window`` run times (seconds) per workload class, oldest first."""

    samples: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    window: int = 64
    # Fewer finished pods than this (in total, or among those that ran as long) give no estimate.
    min_samples: int = 5
    # The estimate of the remaining run time: this quantile, so that about one pod in ten ends later.
    quantile: float = 0.9


def workload_class(pod: Pod) -> str:
    """Pods of one class are expected to run about as long: same namespace, owner kind, app and requests.

    The app is the ``deployer.io/workload-class`` label, else ``app.kubernetes.io/name``, ``app`` or the
    Job's name without a generated run suffix (CronJob timestamps, random five-character tails).
    """
    app = next((pod.labels[k] for k in _NAME_LABELS if pod.labels.get(k)), "")
    if app and WORKLOAD_CLASS_LABEL not in pod.labels:
        app = _RUN_SUFFIX.sub("", app)
    r = pod.requests
    return f"{pod.namespace}/{pod.owner_kind.value}/{app}/{r.cpu_m}m/{r.memory_mib}Mi/{r.gpu}gpu"


def learn(model: RuntimeModel, finished: Iterable[tuple[str, float]]) -> RuntimeModel:
    """The model with the run times of these finished pods (class, seconds) appended; the input is kept."""
    samples = dict(model.samples)
    changed = False
    for cls, seconds in finished:
        if not math.isfinite(seconds) or seconds < 0:
            continue  # clock skew or a half-known pod: learn nothing rather than something wrong
        samples[cls] = (*samples.get(cls, ()), float(seconds))[-model.window :]
        changed = True
    return replace(model, samples=samples) if changed else model


def learn_finished(
    model: RuntimeModel, pods: Iterable[Pod], learned: frozenset[str]
) -> tuple[RuntimeModel, frozenset[str]]:
    """Fold in the pods of a snapshot that succeeded since the last call; return the model and their uids.

    ``learned`` is what the previous call returned: the succeeded pods still listed, so none counts twice
    and the memory is bounded by the snapshot. A failed pod says nothing about how long the work takes.
    """
    timed = [(p, t) for p in pods if (t := _run_time(p)) is not None]
    model = learn(model, ((workload_class(p), t) for p, t in timed if p.uid not in learned))
    return model, frozenset(p.uid for p, _ in timed)


def _run_time(pod: Pod) -> float | None:
    if pod.phase != "Succeeded" or pod.started_at is None or pod.finished_at is None:
        return None
    return pod.finished_at - pod.started_at


def remaining(model: RuntimeModel, cls: str, elapsed: float) -> float | None:
    """Seconds a pod of ``cls`` that has run ``elapsed`` seconds is still expected to run, or None.

    Conditioned on having run this long: among the finished pods of the class that ran at least
    ``elapsed``, the ``quantile`` of what they ran beyond it. None when fewer than ``min_samples`` did.
    """
    return Estimator(model).remaining(cls, elapsed)


class Estimator:
    """``remaining()`` for many pods of one planning round: each class's run times are sorted once."""

    def __init__(self, model: RuntimeModel) -> None:
        self._model = model
        self._sorted: dict[str, list[float] | None] = {}

    def _ordered(self, cls: str) -> list[float] | None:
        ordered = self._sorted.get(cls, [])
        if ordered == []:
            past = self._model.samples.get(cls)
            enough = past is not None and len(past) >= self._model.min_samples
            ordered = self._sorted[cls] = sorted(past) if enough and past is not None else None
        return ordered

    def median(self, cls: str) -> float | None:
        """The typical run time of the class, or None without ``min_samples`` finished pods."""
        ordered = self._ordered(cls)
        return ordered[(len(ordered) - 1) // 2] if ordered is not None else None

    def remaining(self, cls: str, elapsed: float) -> float | None:
        model = self._model
        ordered = self._ordered(cls)
        if ordered is None:
            return None
        first = bisect.bisect_left(ordered, elapsed)
        beyond = len(ordered) - first
        if beyond < model.min_samples:
            return None
        return ordered[first + max(0, math.ceil(model.quantile * beyond) - 1)] - elapsed


def known_classes(model: RuntimeModel | None) -> int:
    """How many classes could give an estimate (for the planner's fast path and for reports)."""
    if model is None:
        return 0
    return sum(1 for past in model.samples.values() if len(past) >= model.min_samples)
