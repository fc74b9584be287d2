"""InferenceService reconciliation, pure: which engine revision to serve, and what the rollout looks like.

Serving follows *promoted* engines only (status.engine of each TRTEngine, which moves only after its
gates pass), so a failed gate on a new revision leaves the previous one serving. An engine promoted
without any gate is refused unless ``allowUnvalidatedEngines`` says otherwise — loudly, as a warning
condition.

GitOps tools judge the service by kstatus' rules, so a service that can't converge without a change
elsewhere says ``Stalled=True`` (Argo CD: Degraded, kstatus: Failed) instead of ``Reconciling=True``
forever: an engine that is missing, refused (unvalidated), stalled itself with nothing promoted, or
whose ``status.engine`` fails the trust checks (reconcile/trust.py). A multi-engine service that serves
only some of its engines keeps serving those, and says so: ``Degraded=True/PartiallyServed`` naming the
others, ``Ready=False``, and Stalled or Reconciling depending on whether the missing ones can still come.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field, replace
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from trtllm_operator.api import constants as c
from trtllm_operator.api import reasons as r
from trtllm_operator.api.conditions import ConditionStatus, find, set_condition
from trtllm_operator.api.engine import EngineStatus, TRTEngineSpec, TRTEngineStatus
from trtllm_operator.api.service import ArchitectureStatus, InferenceServiceSpec, InferenceServiceStatus
from trtllm_operator.gpu import GpuNodeFacts
from trtllm_operator.reconcile import autoscaling
from trtllm_operator.reconcile.canary import CanaryInputs, CanaryPlan, Measured, plan_canary
from trtllm_operator.reconcile.engine import Event
from trtllm_operator.reconcile.mpissh import SshProblem, ssh_identity
from trtllm_operator.reconcile.multinode import GroupShape, ShapeProblem, lws_rollout, serving_shape
from trtllm_operator.reconcile.trust import engine_status_problem
from trtllm_operator.render.canary import CANARY_SUFFIX, render_canary
from trtllm_operator.render.mpissh import SshIdentity
from trtllm_operator.render.multinode import render_leader_worker_set
from trtllm_operator.render.serving import (
    deployment_name,
    render_deployment,
    render_hpa,
    render_service,
    selector_labels,
    served_model_name,
    serving_image,
)
from trtllm_operator.trtllm.cli_tables import version_from_image


@dataclass(frozen=True)
class ServiceObservation:
    namespace: str
    name: str
    uid: str
    generation: int
    spec: dict[str, Any]
    status: dict[str, Any]
    engines: dict[str, dict[str, Any] | None]  # engine name -> TRTEngine object (None: not found)
    deployments: dict[str, dict[str, Any]]  # deployment name -> Deployment object
    _: KW_ONLY  # the optional observations below, by name (several branches add them)
    #: LeaderWorkerSet name -> object (multi-node engines; render/multinode.py)
    leader_worker_sets: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: LeaderWorkerSet name -> its worker pods (LWS doesn't count their readiness: we do)
    group_workers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    nodes: tuple[GpuNodeFacts, ...] = ()  # GPU facts of the cache's Nodes (GPUs per node)
    lws_installed: bool = True  # the LeaderWorkerSet API is served (its CRD is installed)
    #: The cached SSH identity Secret <service>-mpi-ssh of multi-node groups (None: absent)
    mpi_ssh_secret: dict[str, Any] | None = None
    #: Prometheus' answers (and the accuracy probe's), brought only when a canary judgement is due.
    measured: Measured | None = None
    #: APIServices from the cache (None: unreadable) and this service's HPAs by name (autoscaling.py).
    apiservices: list[dict[str, Any]] | None = None
    hpas: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class ServiceDecision:
    status: InferenceServiceStatus
    apply: list[dict[str, Any]] = field(default_factory=list)
    delete: list[tuple[str, str]] = field(default_factory=list)  # (kind, name)
    events: list[Event] = field(default_factory=list)
    #: A multi-node group needs the SSH identity Secret and there is none: generate it (once)
    create_mpi_ssh_secret: bool = False
    requeue_after: float | None = None  # seconds: a canary's judgement time


@dataclass(frozen=True)
class _Served:
    engine_name: str
    spec: TRTEngineSpec
    engine: EngineStatus


def _engine_refs(spec: InferenceServiceSpec) -> list[str]:
    if spec.engineRefs:
        return [ref.name for ref in spec.engineRefs]
    return [spec.engineRef.name] if spec.engineRef else []


def _servable(
    name: str, obj: dict[str, Any] | None, spec: InferenceServiceSpec
) -> tuple[_Served | None, str, str]:
    """The engine to serve, or (None, reason, message) saying why not."""
    if obj is None:
        return (
            None,
            r.ENGINE_NOT_FOUND,
            f"TRTEngine {name} not found in this namespace: create it or fix spec.engineRef",
        )
    try:
        engine_spec = TRTEngineSpec.model_validate(obj.get("spec") or {})
        status = TRTEngineStatus.model_validate(obj.get("status") or {})
    except ValidationError:
        return None, r.ENGINE_NOT_READY, f"TRTEngine {name} has an invalid spec or status"
    if status.engine is None:
        ready = find(status.conditions, r.READY)
        why = f"{ready.reason}: {ready.message}" if ready else "no status yet"
        stalled = find(status.conditions, r.STALLED)
        if stalled is not None and stalled.status == "True":
            return (
                None,
                r.ENGINE_STALLED,
                f"TRTEngine {name} is stalled with no promoted engine ({stalled.reason}: "
                f"{stalled.message[:1500]}); fix the TRTEngine",
            )
        return (
            None,
            r.ENGINE_NOT_READY,
            f"TRTEngine {name} has no promoted engine yet (phase {status.phase}; {why})",
        )
    problem = engine_status_problem(status.engine, name, engine_spec)
    if problem:
        return None, r.INVALID_ENGINE_STATUS, f"TRTEngine {name} is not served: {problem}"
    if not status.engine.validated and not spec.allowUnvalidatedEngines:
        return (
            None,
            r.ENGINE_NOT_VALIDATED,
            (
                f"TRTEngine {name} revision {status.engine.revision} was promoted without validation gates: "
                "add spec.validation (accuracy and/or benchmark) to the TRTEngine, "
                "or set allowUnvalidatedEngines: true"
            ),
        )
    if mismatch := runtime_version_mismatch(name, spec, engine_spec, status.engine):
        return None, r.RUNTIME_VERSION_MISMATCH, mismatch
    return _Served(name, engine_spec, status.engine), "", ""


#: Blocked for good: nothing changes until someone edits a TRTEngine or this service.
TERMINAL = frozenset(
    {
        r.ENGINE_NOT_FOUND,
        r.ENGINE_NOT_VALIDATED,
        r.ENGINE_STALLED,
        r.INVALID_ENGINE_STATUS,
        r.RUNTIME_VERSION_MISMATCH,
        r.LEADER_WORKER_SET_MISSING,
        r.NO_MULTI_NODE_SPLIT,
        r.MPI_SSH_SECRET_INVALID,
        r.DUPLICATE_ARCHITECTURE,
    }
)


def _multi_node(
    obs: ServiceObservation, served: list[_Served], blocked: list[tuple[str, str]]
) -> tuple[list[_Served], dict[str, GroupShape]]:
    """Which served engines need a LeaderWorkerSet (engine name -> group shape); the ones that need
    one but can't get it move to ``blocked`` (no LWS API, no even split over the nodes)."""
    shapes: dict[str, GroupShape] = {}
    kept = []
    for s in served:
        shape = serving_shape(s.spec, s.engine, obs.nodes)
        if isinstance(shape, ShapeProblem):
            blocked.append((r.NO_MULTI_NODE_SPLIT, f"TRTEngine {s.engine_name}: {shape.message}"))
            continue
        if shape is not None and not obs.lws_installed:
            world = s.spec.parallelism.tensor * s.spec.parallelism.pipeline
            blocked.append(
                (
                    r.LEADER_WORKER_SET_MISSING,
                    f"TRTEngine {s.engine_name} needs {world} GPUs, more than one node of "
                    f"{s.engine.computeCapability} has ({shape.gpus_per_node}): multi-node serving needs "
                    f"LeaderWorkerSet {c.LWS_TESTED_RELEASE} ({c.LWS_API_VERSION}, sigs.k8s.io/lws) "
                    "installed in the cluster",
                )
            )
            continue
        identity = ssh_identity(obs.name, obs.mpi_ssh_secret) if shape is not None else None
        if isinstance(identity, SshProblem):
            blocked.append((r.MPI_SSH_SECRET_INVALID, identity.message))
            continue
        if shape is not None:
            shapes[s.engine_name] = shape
        kept.append(s)
    return kept, shapes


def _summary(refs: list[str], served: list[_Served]) -> str:
    """The ENGINES column: 'a r3, b (not served)'."""
    by_name = {s.engine_name: s.engine.revision for s in served}
    parts = [f"{n} r{by_name[n]}" if n in by_name else f"{n} (not served)" for n in refs]
    return ", ".join(parts)[:1024]


def engine_version(engine_spec: TRTEngineSpec, engine: EngineStatus) -> str | None:
    """The TensorRT-LLM version that built the engine: recorded in its manifest, else its image's tag."""
    return engine.trtllmVersion or version_from_image(engine.image or engine_spec.image)


def runtime_version_mismatch(
    name: str, svc: InferenceServiceSpec, engine_spec: TRTEngineSpec, engine: EngineStatus
) -> str | None:
    """A TensorRT engine plan deserializes only in the TensorRT(-LLM) version that built it; a message
    when the serving image's version (from its tag) is known and differs, else None."""
    image = serving_image(svc, engine, engine_spec)
    built, serving = engine_version(engine_spec, engine), version_from_image(image)
    if built is None or serving is None or built == serving:
        return None
    return (
        f"TRTEngine {name} revision {engine.revision} was built with TensorRT-LLM {built} but the serving "
        f"image {image} is TensorRT-LLM {serving}: the engine would not load (serialization version "
        f"mismatch). Remove spec.image to serve with the build image, or set it to a {built} image"
    )


def _version_unknown(svc: InferenceServiceSpec, served: list[_Served]) -> str | None:
    unknown = sorted(
        {img for s in served if version_from_image(img := serving_image(svc, s.engine, s.spec)) is None}
    )
    if not unknown:
        return None
    return (
        f"cannot tell the TensorRT-LLM version of serving image {', '.join(unknown)} from its tag: make "
        "sure it "
        "is the version that built the engine, or use a release tag (e.g. release:1.2.0)"
    )


def _set(
    status: InferenceServiceStatus,
    gen: int,
    now: datetime,
    type_: str,
    value: ConditionStatus,
    reason: str,
    message: str,
) -> None:
    status.conditions = set_condition(
        status.conditions, type_, value, reason, message, generation=gen, clock=lambda: now
    )


def _rollout(deployment: dict[str, Any] | None, wanted: int | None) -> tuple[bool, bool, str, int, int]:
    """(done, stalled, message, replicas, ready) for one Deployment."""
    if deployment is None:
        return False, False, "Deployment not created yet", 0, 0
    meta, st = deployment.get("metadata") or {}, deployment.get("status") or {}
    replicas, ready = int(st.get("replicas") or 0), int(st.get("readyReplicas") or 0)
    updated, available = int(st.get("updatedReplicas") or 0), int(st.get("availableReplicas") or 0)
    desired = int((deployment.get("spec") or {}).get("replicas") or 0) if wanted is None else wanted
    conds = {x.get("type"): x for x in st.get("conditions") or []}
    progressing = conds.get("Progressing") or {}
    if progressing.get("status") == "False" and progressing.get("reason") == "ProgressDeadlineExceeded":
        return (
            False,
            True,
            f"rollout of {meta.get('name')} stalled: {progressing.get('message', '')}",
            replicas,
            ready,
        )
    observed = int(st.get("observedGeneration") or 0) >= int(meta.get("generation") or 0)
    done = observed and updated >= desired and available >= desired and replicas == updated
    return done, False, f"{meta.get('name')}: {ready}/{desired} ready, {updated} updated", replicas, ready


def reconcile_service(obs: ServiceObservation, now: datetime) -> ServiceDecision:
    try:
        old = InferenceServiceStatus.model_validate(obs.status or {})
    except ValidationError:
        old = InferenceServiceStatus()
    status = old.model_copy(deep=True)
    status.observedGeneration = obs.generation
    decision = ServiceDecision(status=status)
    gen = obs.generation

    def cond(type_: str, value: ConditionStatus, reason: str, message: str) -> None:
        _set(status, gen, now, type_, value, reason, message)

    try:
        spec = InferenceServiceSpec.model_validate(obs.spec)
    except ValidationError as error:
        first_error = error.errors()[0]
        message = f"spec.{'.'.join(str(p) for p in first_error['loc'])}: {first_error['msg']}"
        invalid: tuple[tuple[str, ConditionStatus], ...] = (
            (r.READY, "False"),
            (r.RECONCILING, "False"),
            (r.STALLED, "True"),
        )
        for type_, value in invalid:
            cond(type_, value, r.INVALID_SPEC, message)
        return decision
    owner = {
        "apiVersion": c.API_VERSION,
        "kind": c.SERVICE_KIND,
        "name": obs.name,
        "uid": obs.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    served, blocked = [], []
    refs = _engine_refs(spec)
    by_deployment: dict[str, str] = {}
    for name in refs:
        ok, reason, message = _servable(name, obs.engines.get(name), spec)
        if ok is not None:
            earlier = by_deployment.setdefault(deployment_name(obs.name, ok.engine), name)
            if earlier != name:
                # One Deployment per architecture: a second engine built for it would overwrite it.
                reason = r.DUPLICATE_ARCHITECTURE
                message = (
                    f"TRTEngine {name} is built for compute capability {ok.engine.computeCapability}, like "
                    f"{earlier} listed before it: spec.engineRefs takes one engine per GPU architecture; "
                    f"remove one of them (or serve the other in its own InferenceService)"
                )
                ok = None
        if ok:
            served.append(ok)
        else:
            blocked.append((reason, message))
    served, shapes = _multi_node(obs, served, blocked)
    # Canaries are rendered as Deployments: a multi-node (LeaderWorkerSet) engine rolls without one.
    canary_plan = _canary(obs, spec, [x for x in served if x.engine_name not in shapes], status, now)
    promoted = served[0] if canary_plan.stable_engine is not None else None
    # The stable Deployment keeps serving its revision during a canary.
    if canary_plan.stable_engine is not None:
        served = [replace(served[0], engine=canary_plan.stable_engine)]
    status.engines = _summary(refs, served)
    unvalidated = [s for s in served if not s.engine.validated]
    if unvalidated:
        cond(
            r.UNVALIDATED_ENGINE,
            "True",
            r.NOT_VALIDATED,
            "serving engines promoted without validation gates: "
            + ", ".join(f"{s.engine_name} r{s.engine.revision}" for s in unvalidated)
            + " (allowUnvalidatedEngines: true)",
        )
    else:
        status.conditions = [x for x in status.conditions if x.type != r.UNVALIDATED_ENGINE]
    if unknown := _version_unknown(spec, served):
        cond(r.RUNTIME_VERSION_UNKNOWN, "True", r.RUNTIME_VERSION_UNKNOWN, unknown)
    else:
        status.conditions = [x for x in status.conditions if x.type != r.RUNTIME_VERSION_UNKNOWN]
    wanted_deployments = {deployment_name(obs.name, s.engine): s for s in served}
    multi = {n: shapes[s.engine_name] for n, s in wanted_deployments.items() if s.engine_name in shapes}
    custom = autoscaling.custom_metrics(obs.apiservices)
    scaling_rows, scaling_trouble = [], []
    for dep_name, s in wanted_deployments.items():
        if shape := multi.get(dep_name):
            identity = ssh_identity(obs.name, obs.mpi_ssh_secret)
            if not isinstance(identity, SshIdentity):  # (a bad one blocked the engine above)
                decision.create_mpi_ssh_secret = identity is None  # the group waits for its identity
                continue
            decision.apply.append(
                render_leader_worker_set(
                    owner,
                    obs.namespace,
                    obs.name,
                    spec,
                    s.engine_name,
                    s.spec,
                    s.engine,
                    size=shape.size,
                    gpus_per_pod=shape.gpus_per_pod,
                    ssh=identity,
                )
            )
        else:
            decision.apply.append(
                render_deployment(owner, obs.namespace, obs.name, spec, s.engine_name, s.spec, s.engine)
            )
        if spec.autoscaling:
            # A LeaderWorkerSet scales by groups through its scale subresource; its pod selector picks
            # the leaders, which serve and export the metrics: the per-pod metric is per group.
            plan = autoscaling.plan_hpa(spec.autoscaling, s.spec, custom)
            decision.apply.append(
                render_hpa(
                    owner,
                    obs.namespace,
                    dep_name,
                    spec,
                    plan.metrics,
                    autoscaling.behavior(spec.autoscaling),
                    kind=c.LWS_KIND if shape else "Deployment",
                )
            )
            row, trouble = autoscaling.observe_hpa(dep_name, plan, obs.hpas.get(dep_name))
            scaling_rows.append(row)
            scaling_trouble += trouble
    status.autoscaling = scaling_rows
    if degraded := autoscaling.degraded_message(spec, scaling_rows, custom, scaling_trouble):
        cond(r.AUTOSCALING_DEGRADED, "True", autoscaling.degraded_reason(scaling_rows), degraded)
    else:
        status.conditions = [x for x in status.conditions if x.type != r.AUTOSCALING_DEGRADED]
    if canary_plan.canary_replicas and promoted is not None:
        p = promoted
        stable = render_deployment(owner, obs.namespace, obs.name, spec, p.engine_name, p.spec, p.engine)
        decision.apply.append(render_canary(stable, canary_plan.canary_replicas))
    if canary_plan.delete:
        decision.delete.append(("Deployment", canary_plan.delete))
    decision.events += canary_plan.events
    decision.requeue_after = canary_plan.requeue_after
    for type_, value, reason, message in canary_plan.conditions:
        cond(type_, value, reason, message)
    if served:
        decision.apply.insert(0, render_service(owner, obs.namespace, obs.name, spec))
    status.selector = ",".join(f"{k}={v}" for k, v in selector_labels(obs.name).items())
    status.url = f"http://{obs.name}.{obs.namespace}.svc.cluster.local:{spec.port}/v1" if served else None
    if served:
        first = served[0].engine
        if status.engineRevision != first.revision and status.engineRevision is not None:
            decision.events.append(
                Event(
                    "Normal",
                    "RollingOut",
                    f"rolling out {served[0].engine_name} revision "
                    f"{first.revision} (was {status.engineRevision})",
                )
            )
        status.engineRevision, status.engineUri = first.revision, first.uri
        status.modelName = served_model_name(obs.name, spec)
    if not (blocked and served):
        status.conditions = [x for x in status.conditions if x.type != r.DEGRADED]
    if blocked and not served:
        terminal = [b for b in blocked if b[0] in TERMINAL]
        reason, message = terminal[0] if terminal else blocked[0]
        cond(r.ENGINE_READY, "False", reason, message)
        stalled = bool(terminal)
        cond(r.READY, "False", reason, message)
        cond(r.RECONCILING, "False" if stalled else "True", reason, message)
        cond(r.STALLED, "True" if stalled else "False", reason, message)
        status.replicas = status.readyReplicas = 0
        status.architectures = []
        return decision
    cond(
        r.ENGINE_READY,
        "True" if not blocked else "False",
        blocked[0][0] if blocked else r.ENGINE_PROMOTED,
        blocked[0][1]
        if blocked
        else ", ".join(
            f"{s.engine_name} revision {s.engine.revision} ({s.engine.computeCapability})" for s in served
        ),
    )
    wanted = None if spec.autoscaling else spec.replicas
    results = [
        lws_rollout(obs.leader_worker_sets.get(n), wanted, obs.group_workers.get(n, []))
        if n in multi
        else _rollout(obs.deployments.get(n), wanted)
        for n in wanted_deployments
    ]
    # A Deployment (or LeaderWorkerSet) no longer wanted (the engine moved to another architecture, or
    # between one node and several) keeps serving behind the same Service until every wanted one has
    # rolled out: deleting it earlier is an outage.
    stale = [
        ("Deployment", n, d)
        for n, d in sorted(obs.deployments.items())
        if (n not in wanted_deployments or n in multi) and not n.endswith(CANARY_SUFFIX)
    ]
    stale += [
        (c.LWS_KIND, n, d)
        for n, d in sorted(obs.leader_worker_sets.items())
        if n not in wanted_deployments or n not in multi
    ]
    rolled_out = all(x[0] for x in results)
    retiring = [] if rolled_out else stale
    if rolled_out:
        decision.delete += [(kind, n) for kind, n, _ in stale]
    status.architectures = _architectures(wanted_deployments, results, retiring, multi)
    status.replicas = sum(a.replicas for a in status.architectures)
    status.readyReplicas = sum(a.readyReplicas for a in status.architectures)
    summary = "; ".join(x[2] for x in results)
    if retiring:
        names = ", ".join(n if kind == "Deployment" else f"{kind} {n}" for kind, n, _ in retiring)
        summary += f"; keeping {names} serving until the new Deployment is ready"
    if any(x[1] for x in results):
        cond(r.AVAILABLE, "False", r.ROLLOUT_STALLED, summary)
        cond(r.READY, "False", r.ROLLOUT_STALLED, summary)
        cond(r.RECONCILING, "False", r.ROLLOUT_STALLED, summary)
        cond(r.STALLED, "True", r.ROLLOUT_STALLED, summary)
    elif all(x[0] for x in results):
        cond(r.AVAILABLE, "True", r.DEPLOYMENT_AVAILABLE, summary)
        cond(r.READY, "True", r.DEPLOYMENT_AVAILABLE, f"serving at {status.url}: {summary}")
        cond(r.RECONCILING, "False", r.DEPLOYMENT_AVAILABLE, summary)
        cond(r.STALLED, "False", r.DEPLOYMENT_AVAILABLE, summary)
    else:
        cond(r.AVAILABLE, "False", r.DEPLOYMENT_PROGRESSING, summary)
        cond(r.READY, "False", r.DEPLOYMENT_PROGRESSING, summary)
        cond(r.RECONCILING, "True", r.DEPLOYMENT_PROGRESSING, summary)
        cond(r.STALLED, "False", r.DEPLOYMENT_PROGRESSING, summary)
    if blocked and not any(x[1] for x in results):
        _partially_served(status, blocked, served, cond)
    if canary_plan.verdict != "none" and not any(x[1] for x in results):
        _canary_verdict(canary_plan, cond)
    return decision


def _canary(
    obs: ServiceObservation,
    spec: InferenceServiceSpec,
    served: list[_Served],
    status: InferenceServiceStatus,
    now: datetime,
) -> CanaryPlan:
    """The canary's plan (reconcile/canary.py) for a one-engine service; status.canary follows it."""
    if spec.engineRef is None or len(served) != 1:
        return CanaryPlan(status=status.canary)
    s = served[0]
    name = deployment_name(obs.name, s.engine)
    live = obs.deployments.get(name)
    live_replicas = int((live or {}).get("spec", {}).get("replicas") or 1) if live else 1
    plan = plan_canary(
        CanaryInputs(
            service=obs.name,
            generation=obs.generation,
            spec=spec.rollout.canary,
            engine_name=s.engine_name,
            engine_spec=s.spec,
            promoted=s.engine,
            stable_name=name,
            stable=live,
            canary=obs.deployments.get(name + CANARY_SUFFIX),
            stable_replicas=live_replicas if spec.autoscaling else spec.replicas,
            previous=status.canary,
            measured=obs.measured,
        ),
        now,
    )
    status.canary = plan.status
    return plan


def _canary_verdict(plan: CanaryPlan, cond: Any) -> None:
    """kstatus and Argo CD: a canary in progress is Reconciling (InProgress / Progressing); a rolled-back
    one is Stalled (Failed / Degraded) until a newer revision or a spec change; the stable keeps serving
    (Available stays as the rollout says)."""
    if plan.verdict == "progressing":
        reason = next((x[2] for x in plan.conditions if x[0] == r.CANARY), r.CANARY_BAKING)
        cond(r.READY, "False", reason, plan.message)
        cond(r.RECONCILING, "True", reason, plan.message)
        cond(r.STALLED, "False", reason, plan.message)
    elif plan.verdict == "rolled_back":
        cond(r.READY, "False", r.CANARY_ROLLED_BACK, plan.message)
        cond(r.RECONCILING, "False", r.CANARY_ROLLED_BACK, plan.message)
        cond(r.STALLED, "True", r.CANARY_ROLLED_BACK, plan.message)


def _cc_of(deployment: str) -> str:
    """chat-sm90 -> 9.0, chat-sm100 -> 10.0 (render.serving.deployment_name)."""
    digits = deployment.rsplit("-sm", 1)[-1]
    return f"{digits[:-1]}.{digits[-1:]}" if digits.isdigit() and len(digits) >= 2 else ""


def _architectures(
    wanted: dict[str, _Served],
    results: list[tuple[bool, bool, str, int, int]],
    retiring: list[tuple[str, str, dict[str, Any]]],
    multi: dict[str, GroupShape],
) -> list[ArchitectureStatus]:
    rows = [
        ArchitectureStatus(
            computeCapability=s.engine.computeCapability,
            deployment=name,
            engine=s.engine_name,
            revision=s.engine.revision,
            replicas=result[3],
            readyReplicas=result[4],
            groupSize=multi[name].size if name in multi else None,
        )
        for (name, s), result in zip(wanted.items(), results, strict=True)
    ]
    for _, name, child in retiring:
        st = child.get("status") or {}
        rows.append(
            ArchitectureStatus(
                computeCapability=_cc_of(name),
                deployment=name,
                replicas=int(st.get("replicas") or 0),
                readyReplicas=int(st.get("readyReplicas") or 0),
                retiring=True,
            )
        )
    return rows


def _partially_served(
    status: InferenceServiceStatus,
    blocked: list[tuple[str, str]],
    served: list[_Served],
    cond: Any,
) -> None:
    """Some engines are served, others not: Degraded=True, never Ready; Stalled when they can't come."""
    names = ", ".join(s.engine_name for s in served)
    message = (
        f"serving {len(served)} of {len(served) + len(blocked)} engines ({names}); not served: "
        + "; ".join(m for _, m in blocked)
    )[:4096]
    terminal = any(reason in TERMINAL for reason, _ in blocked)
    cond(r.DEGRADED, "True", r.PARTIALLY_SERVED, message)
    cond(r.READY, "False", r.PARTIALLY_SERVED, message)
    cond(r.RECONCILING, "False" if terminal else "True", r.PARTIALLY_SERVED, message)
    cond(r.STALLED, "True" if terminal else "False", r.PARTIALLY_SERVED, message)
