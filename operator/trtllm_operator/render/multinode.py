"""A LeaderWorkerSet for an engine whose tensor x pipeline exceeds one node's GPUs. Pure.

One LeaderWorkerSet (sigs.k8s.io/lws, ``leaderworkerset.x-k8s.io/v1``) per engine architecture, in
place of the Deployment ``render/serving.py`` would render: each replica is a *group* of ``size`` pods
(leader + workers), each pod asking for ``gpus_per_pod`` GPUs, all of them pinned to the engine's
architecture by the same required node affinity as a Deployment's pods.

How the leader serves across the group follows TensorRT-LLM's multi-node serving: one MPI rank per
GPU over all the nodes, every rank running ``trtllm-llmapi-launch trtllm-serve <model> ...``
(rank 0 serves HTTP), launched by ``srun`` on Slurm in
NVIDIA/TensorRT-LLM ``examples/llm-api/llm_mgmn_trtllm_serve.sh``
(@ 0bd88711aa8fec008340db83f067e17b5e5e374c: "the number of MPI processes should be the same as the
model world size. e.g. For tensor_parallel_size=16, you may use 2 nodes with 8 gpus for each").
Without Slurm the leader starts the ranks itself with ``mpirun -np <world> --host <pod>:<gpus>,...``
(as LWS's own TensorRT-LLM example does, sigs.k8s.io/lws@v0.8.0 docs/examples/tensorrt-llm): the
hosts are the group's pods, named by LWS ``<lws>-<group>`` (leader, ``$LWS_LEADER_ADDRESS``) and
``<lws>-<group>-<i>`` (workers) under the LWS headless Service. Workers run the MPI launch daemon
(``sshd``) and nothing else: the leader's mpirun starts their ranks.

The Service selects ``trtllm.dev/component=server``, which only leaders carry (workers are
``server-worker``): clients reach a group through its leader.
"""

from __future__ import annotations

import copy
from typing import Any

from trtllm_operator.api import constants as c
from trtllm_operator.api.engine import EngineStatus, TRTEngineSpec
from trtllm_operator.api.service import InferenceServiceSpec
from trtllm_operator.gpu.labels import GFD
from trtllm_operator.render.mpissh import MPI_SSH_PORT, SshIdentity, mount_identity, rsh_args, sshd_command
from trtllm_operator.render.serving import render_deployment

__all__ = ["MPI_SSH_PORT", "leader_command", "render_leader_worker_set"]
#: Sources the rendering follows (cited in docs/serving.md too).
TRTLLM_MULTINODE_SOURCE = (
    "NVIDIA/TensorRT-LLM examples/llm-api/llm_mgmn_trtllm_serve.sh @ 0bd88711aa8fec008340db83f067e17b5e5e374c"
)
LWS_TRTLLM_EXAMPLE = "sigs.k8s.io/lws@v0.8.0 docs/examples/tensorrt-llm (lws.yaml, build/server.py)"


def group_hosts(lws_name: str, namespace: str, size: int, gpus_per_pod: int) -> str:
    """mpirun's --host list: the leader (LWS_LEADER_ADDRESS) and each worker's DNS name, with slots.

    ``$(VAR)`` is expanded by the kubelet from the container's env (LWS's pod webhook injects
    LWS_LEADER_ADDRESS; LWS_GROUP_INDEX comes from the group-index label by the downward API)."""
    hosts = [f"$(LWS_LEADER_ADDRESS):{gpus_per_pod}"]
    hosts += [
        f"{lws_name}-$(LWS_GROUP_INDEX)-{index}.{lws_name}.{namespace}:{gpus_per_pod}"
        for index in range(1, size)
    ]
    return ",".join(hosts)


def leader_command(lws_name: str, namespace: str, size: int, gpus_per_pod: int, world: int) -> list[str]:
    """mpirun over the group, each rank wrapped by trtllm-llmapi-launch; the container's args are the
    single-node ``trtllm-serve ...`` argv, so every rank runs the same server command."""
    return [
        "mpirun",
        "--allow-run-as-root",
        "-np",
        str(world),
        "--host",
        group_hosts(lws_name, namespace, size, gpus_per_pod),
        "--mca",
        "plm_rsh_args",
        rsh_args(),
        "--bind-to",
        "none",
        "trtllm-llmapi-launch",
    ]


def _gpus(container: dict[str, Any], gpus: int) -> None:
    for part in ("limits", "requests"):
        container["resources"].setdefault(part, {})[GFD.RESOURCE] = str(gpus)


def _max_unavailable(value: int | str) -> int | str:
    """LWS hands maxUnavailable to its leader StatefulSet, whose API refuses 0 ("cannot be 0",
    lws v0.8.0 on Kubernetes 1.37): the spec's 0 becomes 1, and maxSurge adds the new group first."""
    return 1 if str(value).rstrip("%").strip("0") == "" else value


def render_leader_worker_set(
    owner: dict[str, Any],
    namespace: str,
    service: str,
    svc: InferenceServiceSpec,
    engine_name: str,
    engine_spec: TRTEngineSpec,
    engine: EngineStatus,
    *,
    size: int,
    gpus_per_pod: int,
    ssh: SshIdentity | None = None,
) -> dict[str, Any]:
    """The LeaderWorkerSet serving ``engine`` in groups of ``size`` pods of ``gpus_per_pod`` GPUs;
    ``ssh``: the group's SSH identity Secret (render/mpissh.py), mounted on leader and workers."""
    deployment = render_deployment(owner, namespace, service, svc, engine_name, engine_spec, engine)
    name = deployment["metadata"]["name"]
    template = deployment["spec"]["template"]
    world = engine_spec.parallelism.tensor * engine_spec.parallelism.pipeline
    annotations = {**template["metadata"]["annotations"], "trtllm.dev/group-size": str(size)}

    leader = copy.deepcopy(template)
    leader["metadata"]["annotations"] = annotations
    server = leader["spec"]["containers"][0]
    _gpus(server, gpus_per_pod)
    server["command"] = leader_command(name, namespace, size, gpus_per_pod, world)
    server["env"] = [
        *server["env"],
        {
            "name": "LWS_GROUP_INDEX",
            "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{c.LWS_LABEL_GROUP_INDEX}']"}},
        },
    ]

    worker = copy.deepcopy(template)
    worker["metadata"]["annotations"] = annotations
    worker["metadata"]["labels"] = {
        **worker["metadata"]["labels"],
        c.LABEL_COMPONENT: c.COMPONENT_SERVER_WORKER,
    }
    rank_host = worker["spec"]["containers"][0]
    _gpus(rank_host, gpus_per_pod)
    rank_host["name"] = "worker"
    rank_host["command"] = sshd_command()
    rank_host["args"] = []
    rank_host["ports"] = [{"name": "mpi-ssh", "containerPort": MPI_SSH_PORT}]
    probe = {"tcpSocket": {"port": "mpi-ssh"}, "periodSeconds": 10}
    rank_host["readinessProbe"] = probe
    rank_host["livenessProbe"] = {**probe, "failureThreshold": 3}
    rank_host.pop("startupProbe", None)
    rank_host.pop("lifecycle", None)  # no traffic reaches a worker: nothing to drain
    if ssh is not None:
        mount_identity(leader, worker, ssh)

    labels = deployment["metadata"]["labels"]
    spec: dict[str, Any] = {
        "startupPolicy": "LeaderCreated",
        "leaderWorkerTemplate": {
            "size": size,
            # MPI ranks can't rejoin a running job: a restarted pod restarts its whole group.
            "restartPolicy": "RecreateGroupOnPodRestart",
            "leaderTemplate": leader,
            "workerTemplate": worker,
        },
        "rolloutStrategy": {
            "type": "RollingUpdate",
            "rollingUpdateConfiguration": {
                "maxUnavailable": _max_unavailable(svc.rollout.maxUnavailable),
                "maxSurge": svc.rollout.maxSurge,
            },
        },
    }
    if svc.autoscaling is None:
        # With spec.autoscaling the HPA owns the group count (LWS's scale subresource): leaving it out of
        # our server-side apply keeps the HPA's writes (LWS's webhook defaults it to 1 on create).
        spec["replicas"] = svc.replicas
    return {
        "apiVersion": c.LWS_API_VERSION,
        "kind": c.LWS_KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [owner],
        },
        "spec": spec,
    }
