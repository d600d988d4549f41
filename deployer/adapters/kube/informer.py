"""List+watch one kind of Kubernetes object into a local cache of converted values.

Used by ``KubeCluster`` (client.py) for pods, nodes and PodDisruptionBudgets. We do not use
``kubernetes.informer.SharedInformer`` (the same code in v36 and v37): it has no "has synced" signal (the
planner must not decide on a half-listed cluster), and its ``stop()`` can miss a watch that is still
connecting and then block until the server ends the stream. Here every wait is bounded and ``stop()``
keeps closing the current stream until the thread has left. Streaming and deserialisation are the
client's ``kubernetes.watch.Watch``.

Protocol: list (records the list's resourceVersion), then watch from it with a server-side
``timeoutSeconds``; resume from the last seen resourceVersion (BOOKMARKs included); on ``410 Gone`` relist
and diff against the cache so that deletions missed during the gap are reported. A list or watch that
breaks (connection reset, server error) clears ``synced`` until a fresh list has succeeded: events may
have been lost, and the daemon must not scale on a cache it cannot trust.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from kubernetes.client.exceptions import ApiException
from kubernetes.watch import Watch

log = logging.getLogger(__name__)

T = TypeVar("T")
# (key, old value or None when added, new value or None when deleted)
ChangeHandler = Callable[[str, Any, Any], None]


def object_key(obj: Any) -> str:
    """``namespace/name`` for namespaced objects, ``name`` for cluster-scoped ones."""
    meta = obj.metadata
    return f"{meta.namespace}/{meta.name}" if meta.namespace else meta.name


class Reflector(Generic[T]):
    """Keep ``items()`` equal to the server's objects of one kind, converted by ``convert``.

    ``on_change`` runs on the reflector's thread for every object whose converted value changed; it must
    be quick and must not raise (exceptions are logged and swallowed so one bad handler cannot stop the
    watch).
    """

    def __init__(
        self,
        name: str,
        list_func: Callable[..., Any],
        convert: Callable[[Any], T],
        *,
        on_change: ChangeHandler | None = None,
        watch_timeout: int = 60,
        max_backoff: float = 30.0,
    ) -> None:
        self.name = name
        self._list_func = list_func
        self._convert = convert
        self._on_change = on_change
        self._watch_timeout = max(1, int(watch_timeout))
        self._max_backoff = max_backoff
        self._items: dict[str, T] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.synced = threading.Event()
        self.resource_version: str | None = None
        self.relists = 0  # lists done after the first: 410 Gone recoveries
        self.last_error: BaseException | None = None
        self._watch: Watch | None = None
        self._thread: threading.Thread | None = None

    def items(self) -> list[T]:
        with self._lock:
            return list(self._items.values())

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"reflector {self.name} already started")
        self._thread = threading.Thread(target=self._run, name=f"kube-reflector-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop watching and wait (at most ``timeout`` s) for the thread to leave."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        # A Watch only closes its socket once its response exists, so poke it until the thread is gone.
        while self._thread is not None and self._thread.is_alive() and time.monotonic() < deadline:
            watch = self._watch
            if watch is not None:
                watch.stop()
            self._thread.join(0.05)
        if self._thread is not None and self._thread.is_alive():
            log.warning("reflector %s did not stop within %.1fs", self.name, timeout)

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                if self.resource_version is None:
                    self._list()
                self._watch_once()
                backoff = 0.5
            except ApiException as exc:
                if exc.status == 410:
                    log.info("%s watch expired (410 Gone); relisting", self.name)
                    self.resource_version = None
                    continue
                backoff = self._failed(exc, backoff)
            except Exception as exc:  # connection resets, timeouts: log and retry, never die
                backoff = self._failed(exc, backoff)

    def _failed(self, exc: BaseException, backoff: float) -> float:
        if self._stop.is_set():
            return backoff
        # A broken list or watch may have lost events: the cache is not trusted again until a fresh list.
        self.synced.clear()
        self.resource_version = None
        self.last_error = exc
        log.warning("%s list/watch failed (%s); retrying in %.1fs", self.name, exc, backoff)
        self._stop.wait(backoff)
        return min(backoff * 2, self._max_backoff)

    def _list(self) -> None:
        response = self._list_func(_request_timeout=self._watch_timeout)
        fresh = {object_key(obj): self._convert(obj) for obj in response.items or ()}
        with self._lock:
            old, self._items = self._items, fresh
        for key in old.keys() - fresh.keys():
            self._notify(key, old[key], None)
        for key, value in fresh.items():
            if old.get(key) != value:
                self._notify(key, old.get(key), value)
        if self.synced.is_set():
            self.relists += 1
        self.resource_version = response.metadata.resource_version
        self.synced.set()

    def _watch_once(self) -> None:
        watch = Watch()
        self._watch = watch
        if self._stop.is_set():
            return
        stream = watch.stream(
            self._list_func,
            resource_version=self.resource_version,
            timeout_seconds=self._watch_timeout,
            allow_watch_bookmarks=True,
            # A read timeout a little past the server's own: a silent dead connection cannot hang us.
            _request_timeout=(10, self._watch_timeout + 10),
        )
        try:
            for event in stream:
                if self._stop.is_set():
                    break
                self._apply(event)
                self.resource_version = watch.resource_version or self.resource_version
        finally:
            self._watch = None

    def _apply(self, event: dict[str, Any]) -> None:
        kind, obj = event["type"], event["object"]
        if kind == "BOOKMARK":
            return
        key = object_key(obj)
        value = None if kind == "DELETED" else self._convert(obj)
        with self._lock:
            old = self._items.pop(key, None) if value is None else self._items.get(key)
            if value is not None:
                self._items[key] = value
        if old != value:
            self._notify(key, old, value)

    def _notify(self, key: str, old: T | None, new: T | None) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change(key, old, new)
        except Exception:
            log.exception("%s change handler failed for %s", self.name, key)
