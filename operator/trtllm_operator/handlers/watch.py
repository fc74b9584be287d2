"""Kopf wiring: watch events only update indexes and enqueue keys; workers do the reconciling.

No kopf change handlers, daemons or timers are registered, so kopf writes no annotations and no
finalizers on user objects: what Argo CD diffs stays exactly what Git has.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from trtllm_operator.api import constants as c
from trtllm_operator.gpu.labels import facts_from_node
from trtllm_operator.handlers import engine, service
from trtllm_operator.handlers.runtime import Key, Runtime
from trtllm_operator.k8s import Kube
from trtllm_operator.logging import configure_logging
from trtllm_operator.settings import OperatorSettings

RECONCILERS = {c.ENGINE_KIND: engine.reconcile, c.SERVICE_KIND: service.reconcile}


def _dispatch(rt: Runtime, key: Key) -> float | None:
    return RECONCILERS[key[0]](rt, key)


@kopf.on.startup()
def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    configure_logging()
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)  # "Handler ... succeeded" per watch event
    settings.posting.enabled = False  # we post our own events; kopf's would duplicate them
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.inactivity_timeout = 600
    settings.persistence.finalizer = c.FINALIZER + "-kopf"  # never added: no handler requires one
    rt = Runtime(settings=OperatorSettings.from_env(), kube=Kube())
    memo["rt"] = rt
    rt.start(_dispatch)


@kopf.on.cleanup()
def cleanup(memo: kopf.Memo, **_: Any) -> None:
    rt: Runtime | None = memo.get("rt")
    if rt is not None:
        rt.stop()


def _track(memo: kopf.Memo, kind: str, type_: str | None, body: kopf.Body) -> None:
    rt: Runtime = memo["rt"]
    key: Key = (kind, body.metadata.namespace or "", body.metadata.name or "")
    with rt.lock:
        if type_ == "DELETED":
            rt.known.discard(key)
        else:
            rt.known.add(key)
    if type_ != "DELETED":
        rt.queue.add(key)


# The event handlers' ``type`` shadows the builtin on purpose: kopf passes the event type by that keyword.
@kopf.on.event(c.GROUP, c.VERSION, c.ENGINE_PLURAL)
def engine_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _track(memo, c.ENGINE_KIND, type, body)
    rt: Runtime = memo["rt"]
    rt.enqueue_kind(c.SERVICE_KIND)  # services follow promoted engines


@kopf.on.event(c.GROUP, c.VERSION, c.SERVICE_PLURAL)
def service_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _track(memo, c.SERVICE_KIND, type, body)


@kopf.on.event("batch", "v1", "jobs", labels={c.LABEL_MANAGED_BY: c.MANAGED_BY})
def job_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    rt: Runtime = memo["rt"]
    labels = body.metadata.labels or {}
    engine_name = labels.get(c.LABEL_ENGINE)
    namespace = body.metadata.namespace or ""
    status: Mapping[str, Any] = body.status or {}
    conditions = status.get("conditions") or []
    finished = any(x.get("type") in ("Complete", "Failed") and x.get("status") == "True" for x in conditions)
    job_key = (namespace, body.metadata.name or "")
    with rt.lock:
        if type == "DELETED" or finished or labels.get(c.LABEL_COMPONENT) != c.COMPONENT_BUILD:
            rt.active_builds.pop(job_key, None)
        elif engine_name:
            rt.active_builds[job_key] = engine_name
    if engine_name:
        rt.queue.add((c.ENGINE_KIND, namespace, engine_name))
    if finished or type == "DELETED":
        rt.enqueue_kind(c.ENGINE_KIND)  # a freed build slot may start a Queued build


@kopf.on.event("", "v1", "nodes")
def node_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    rt: Runtime = memo["rt"]
    name = body.metadata.name or ""
    selector = rt.settings.node_selector
    labels = body.metadata.labels or {}
    facts = None
    if type != "DELETED" and all(labels.get(k) == v for k, v in selector.items()):
        facts = facts_from_node(dict(body))
    with rt.lock:
        before = rt.gpu_nodes.get(name)
        if facts is None:
            rt.gpu_nodes.pop(name, None)
        else:
            rt.gpu_nodes[name] = facts
    if before != facts:
        rt.enqueue_kind(c.ENGINE_KIND)  # a fitting node may have appeared (or gone)
