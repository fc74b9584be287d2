"""Reconcile one InferenceService: gather engines and children (from the caches), decide (pure), apply.

A child is applied only when its cached copy was not rendered from exactly what we render now (the
rendered-hash annotation), so a service in the steady state costs no request at all.
"""

from __future__ import annotations

from datetime import UTC, datetime

import structlog

from trtllm_operator import k8s
from trtllm_operator.api import constants as c
from trtllm_operator.api.service import InferenceServiceStatus
from trtllm_operator.handlers.canary import judgement_inputs
from trtllm_operator.handlers.mpissh import create_identity
from trtllm_operator.handlers.runtime import BY_LWS, BY_SERVICE, Key, Runtime, service_engine_refs
from trtllm_operator.reconcile.service import ServiceObservation, reconcile_service
from trtllm_operator.render.mpissh import secret_name

log = structlog.get_logger(__name__)

#: Events that end a canary (reconcile/canary.py), counted in trtllm_operator_canary_outcomes_total.
CANARY_OUTCOMES = frozenset({"CanaryPromoted", "CanaryRolledBack"})


def reconcile(rt: Runtime, key: Key) -> float | None:
    _, namespace, name = key
    obj = rt.caches.services.get(namespace, name)
    if obj is None or obj["metadata"].get("deletionTimestamp"):
        return None  # children go with ownerReferences
    spec = obj.get("spec") or {}
    spec = spec if isinstance(spec, dict) else {}
    engines = {ref: rt.caches.engines.get(namespace, ref) for ref in service_engine_refs(obj)}
    deployments = {
        d["metadata"]["name"]: d for d in rt.caches.deployments.by_index(BY_SERVICE, f"{namespace}/{name}")
    }
    lws = rt.caches.leader_worker_sets
    leader_worker_sets = {d["metadata"]["name"]: d for d in lws.by_index(BY_SERVICE, f"{namespace}/{name}")}
    meta = obj["metadata"]
    now = datetime.now(UTC)
    obs = ServiceObservation(
        namespace,
        name,
        meta.get("uid", ""),
        int(meta.get("generation") or 0),
        spec,
        obj.get("status") or {},
        engines,
        deployments,
        leader_worker_sets=leader_worker_sets,
        group_workers={n: rt.caches.pods.by_index(BY_LWS, f"{namespace}/{n}") for n in leader_worker_sets},
        nodes=rt.nodes(),
        lws_installed=not lws.absent.is_set(),
        mpi_ssh_secret=rt.caches.secrets.get(namespace, secret_name(name)),
        # Prometheus only when a canary judgement is due.
        measured=judgement_inputs(rt, namespace, name, obj, now),
        apiservices=rt.caches.apiservice_objects(),
        hpas={h["metadata"]["name"]: h for h in rt.caches.hpas.objects(namespace)},
    )
    decision = reconcile_service(obs, now)
    for child in decision.apply:
        child_meta = child["metadata"]
        cached = rt.caches.child(child["kind"], child_meta.get("namespace", namespace), child_meta["name"])
        if not k8s.up_to_date(child, cached):
            rt.kube.apply(child)
    if decision.create_mpi_ssh_secret:
        create_identity(rt, obj)
    for kind, child_name in decision.delete:
        rt.kube.delete(kind, namespace, child_name)
    new = decision.status.model_dump(mode="json", exclude_none=True)
    try:
        old = InferenceServiceStatus.model_validate(obj.get("status") or {}).model_dump(
            mode="json", exclude_none=True
        )
    except ValueError:
        old = {}
    if new != old or not obj.get("status"):
        patch = k8s.merge_patch_to(obj.get("status"), new)  # unset fields removed, not kept
        rt.kube.patch_custom_status(
            c.SERVICE_PLURAL, namespace, name, patch, resource_version=meta.get("resourceVersion")
        )
    for event in decision.events:
        rt.kube.post_event(obj, event.type, event.reason, event.message)
        if event.reason in CANARY_OUTCOMES:  # counted once: the status that records it was written
            rt.metrics.canaries.labels(outcome=event.reason).inc()
    return decision.requeue_after  # a canary's judgement time
