"""Watch-fed caches (client-go's ``tools/cache`` informer, the small part an operator needs).

An ``Informer`` LISTs a resource once (paginated, server-side label selector), marks itself synced,
then WATCHes from the list's resourceVersion with bookmarks. Every event updates an in-memory store
and its indexes, then calls the handlers, which only map the event to work-queue keys. A reconcile
reads the store (a dict lookup), never the API server. A watch that expires (410 ExpiredError) re-lists and
delivers the difference as events; a broken connection re-watches from the last resourceVersion after
a capped backoff, so an API-server restart heals without restarting the operator.

The API calls sit behind ``ListWatch`` (implemented in ``k8s.py``, the only module that talks to the
API server), so the store, the indexes and the re-list logic are unit-tested with a scripted source.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

log = structlog.get_logger(__name__)
Obj = dict[str, Any]
ObjKey = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped objects
#: (event type, old object or None, new object or None); type is ADDED, MODIFIED or DELETED.
Handler = Callable[[str, Obj | None, Obj | None], None]
IndexFunc = Callable[[Obj], Iterable[str]]

#: Fields dropped before an object is stored: large, and no reconcile reads them.
_STRIP_METADATA = ("managedFields",)


class ExpiredError(Exception):
    """The watch's resourceVersion is too old (HTTP 410): re-list."""


class ListWatch(Protocol):
    """One resource in one scope (a namespace, or the whole cluster)."""

    def list(self) -> tuple[list[Obj], str]:
        """Every object (all pages) and the collection's resourceVersion."""
        ...

    def watch(self, resource_version: str) -> Iterator[Obj]:
        """Raw watch events (``{"type": ..., "object": ...}``) from ``resource_version``.

        Ends when the server closes the stream (its timeout); raises ``ExpiredError`` on 410.
        """
        ...


def object_key(obj: Obj) -> ObjKey:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def strip(obj: Obj) -> Obj:
    """A copy without the fields no reconcile reads (managedFields, node images)."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _STRIP_METADATA}
    out = {**obj, "metadata": meta}
    status = obj.get("status")
    if isinstance(status, dict) and "images" in status:
        out["status"] = {k: v for k, v in status.items() if k != "images"}
    return out


def _rv(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


@dataclass
class _Scope:
    """One ListWatch and the namespace it covers (None: every namespace)."""

    source: ListWatch
    namespace: str | None
    listed: bool = False


class Informer:
    """A store of one resource kind, kept current from LIST + WATCH, with indexes and handlers."""

    def __init__(
        self,
        name: str,
        sources: Iterable[tuple[ListWatch, str | None]],
        *,
        indexers: dict[str, IndexFunc] | None = None,
        transform: Callable[[Obj], Obj] = strip,
        retry_base: float = 0.5,
        retry_cap: float = 30.0,
        describe: Callable[[BaseException], str] = lambda error: str(error)[:300],
        absent_if: Callable[[BaseException], bool] | None = None,
        absent_recheck: float = 300.0,
    ) -> None:
        self.name = name
        self._scopes = [_Scope(source, namespace) for source, namespace in sources]
        self._indexers = dict(indexers or {})
        self._transform = transform
        self._retry_base, self._retry_cap = retry_base, retry_cap
        self._describe = describe  # k8s.describe_error: the API's reason, never HTTP headers
        self._lock = threading.RLock()
        self._store: dict[ObjKey, Obj] = {}
        self._index: dict[str, dict[str, set[ObjKey]]] = {name: {} for name in self._indexers}
        self._handlers: list[Handler] = []
        self.synced = threading.Event()
        #: Set while the resource itself is not served (``absent_if`` said so of the LIST's error, e.g. a
        #: CRD that is not installed): the cache is empty and synced, and LIST is retried with backoff.
        self.absent = threading.Event()
        self._absent_if = absent_if
        #: How often a resource that is not served is LISTed again (rarely: it costs a request, and
        #: installing a CRD is a rare event; the steady state stays free of requests).
        self._absent_recheck = absent_recheck
        self.relists = 0
        self.watch_errors = 0

    # ------------------------------------------------------------------ reading
    def get(self, namespace: str, name: str) -> Obj | None:
        with self._lock:
            return self._store.get((namespace, name))

    def objects(self, namespace: str | None = None) -> list[Obj]:
        with self._lock:
            return [o for (ns, _), o in self._store.items() if namespace is None or ns == namespace]

    def object_keys(self) -> list[ObjKey]:
        with self._lock:
            return list(self._store)

    def by_index(self, index: str, value: str) -> list[Obj]:
        with self._lock:
            keys = self._index[index].get(value, set())
            return [self._store[k] for k in sorted(keys) if k in self._store]

    def __len__(self) -> int:
        with self._lock:
            return len(self._store)

    # ------------------------------------------------------------------ events
    def add_handler(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def _notify(self, type_: str, old: Obj | None, new: Obj | None) -> None:
        for handler in self._handlers:
            try:
                handler(type_, old, new)
            except Exception:  # a handler bug must not stop the cache from following the watch
                log.exception("informer handler failed", informer=self.name, event_type=type_)

    def _index_update(self, key: ObjKey, old: Obj | None, new: Obj | None) -> None:
        for name, func in self._indexers.items():
            table = self._index[name]
            for value in set(func(old)) if old is not None else set():
                keys = table.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del table[value]
            for value in set(func(new)) if new is not None else set():
                table.setdefault(value, set()).add(key)

    def upsert(self, raw: Obj) -> None:
        obj = self._transform(raw)
        key = object_key(obj)
        with self._lock:
            old = self._store.get(key)
            if old is not None and _rv(old) == _rv(obj) and _rv(obj):
                return  # a re-list delivering what we already have
            self._store[key] = obj
            self._index_update(key, old, obj)
        self._notify("ADDED" if old is None else "MODIFIED", old, obj)

    def remove(self, key: ObjKey) -> None:
        with self._lock:
            old = self._store.pop(key, None)
            if old is None:
                return
            self._index_update(key, old, None)
        self._notify("DELETED", old, None)

    def replace(self, items: list[Obj], namespace: str | None) -> None:
        """A LIST's result for one scope: upsert each, delete what the scope no longer has."""
        seen = set()
        for item in items:
            seen.add(object_key(item))
            self.upsert(item)
        with self._lock:
            gone = [k for k in self._store if k not in seen and (namespace is None or k[0] == namespace)]
        for key in gone:
            self.remove(key)

    def apply_event(self, event: Obj) -> str | None:
        """Apply one raw watch event; returns the resourceVersion to resume from (None: keep)."""
        type_, obj = event.get("type"), event.get("object")
        if not isinstance(obj, dict):
            return None
        if type_ == "ERROR":
            if obj.get("code") == 410:
                raise ExpiredError(str(obj.get("message") or "resourceVersion too old"))
            raise RuntimeError(f"watch error {obj.get('code')}: {obj.get('message')}")
        if type_ in ("ADDED", "MODIFIED"):
            self.upsert(obj)
        elif type_ == "DELETED":
            self.remove(object_key(obj))
        return _rv(obj) or None  # BOOKMARK events carry only a resourceVersion

    # ------------------------------------------------------------------ running
    def run(self, stop: threading.Event) -> list[threading.Thread]:
        """Start one thread per scope; ``synced`` is set once every scope has listed."""
        threads = []
        for scope in self._scopes:
            thread = threading.Thread(
                target=self._follow, args=(scope, stop), name=f"informer-{self.name}", daemon=True
            )
            thread.start()
            threads.append(thread)
        return threads

    def _mark_listed(self, scope: _Scope) -> None:
        with self._lock:
            scope.listed = True
            if all(s.listed for s in self._scopes):
                self.synced.set()

    def _mark_absent(self, scope: _Scope) -> None:
        """The resource is not served: an empty, synced cache (nothing of it can exist)."""
        if not self.absent.is_set():
            log.warning("resource not served; cache empty until it is", informer=self.name)
        self.absent.set()
        self.replace([], scope.namespace)
        self._mark_listed(scope)

    def _follow(self, scope: _Scope, stop: threading.Event) -> None:
        resource_version: str | None = None
        failures = 0
        while not stop.is_set():
            try:
                if resource_version is None:
                    try:
                        items, resource_version = scope.source.list()
                    except Exception as error:
                        if self._absent_if is None or not self._absent_if(error):
                            raise
                        self._mark_absent(scope)
                        if stop.wait(self._absent_recheck):
                            return
                        continue
                    if self.absent.is_set():
                        log.info("resource now served", informer=self.name)
                    self.absent.clear()
                    self.replace(items, scope.namespace)
                    self._mark_listed(scope)
                for event in scope.source.watch(resource_version):
                    resource_version = self.apply_event(event) or resource_version
                    failures = 0
                    if stop.is_set():
                        return
                failures = 0  # the server ended the stream (its timeout): watch again from here
            except ExpiredError:
                self.relists += 1
                log.info("watch expired; re-listing", informer=self.name, namespace=scope.namespace)
                resource_version = None
            except Exception as error:  # API server down, connection reset, 5xx: back off and retry
                if self._absent_if is not None and self._absent_if(error):
                    resource_version = None  # the resource itself went away (a CRD deleted): LIST again
                self.watch_errors += 1
                delay = min(self._retry_cap, self._retry_base * 2 ** min(failures, 10))
                failures += 1
                log.warning(
                    "watch failed; retrying",
                    informer=self.name,
                    namespace=scope.namespace,
                    error=self._describe(error),
                    retry_in=delay,
                )
                if stop.wait(delay):
                    return
