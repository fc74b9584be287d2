"""Proof that the local cluster is real: CEL admission, the scheduler, the Job and Deployment controllers,
GPU resources, and KWOK reporting a container's exit code and termination message."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from tests.support import Kube, wait_for

pytestmark = pytest.mark.cluster

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def _container(**extra: Any) -> dict[str, Any]:
    return {"name": "main", "image": "busybox", **extra}


@pytest.fixture(scope="module")
def widget_crd(kube: Kube) -> str:
    """A throwaway CRD with a CEL rule: the API server must enforce it."""
    name = "widgets.smoke.trtllm.dev"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {
            "group": "smoke.trtllm.dev",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}},
                                    "x-kubernetes-validations": [
                                        {
                                            "rule": "self.min <= self.max",
                                            "message": "spec.min must be ≤ spec.max",
                                        }
                                    ],
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    try:
        kube.ext.create_custom_resource_definition(crd)
    except client.ApiException as error:
        if error.status != 409:  # only AlreadyExists (a re-run on the same cluster) is fine
            raise
    wait_for(
        lambda: any(
            c.type == "Established" and c.status == "True"
            for c in kube.ext.read_custom_resource_definition(name).status.conditions or []
        ),
        30,
        what="Widget CRD Established",
    )
    return name


def _create_widget(kube: Kube, namespace: str, low: int, high: int) -> None:
    body = {
        "apiVersion": "smoke.trtllm.dev/v1",
        "kind": "Widget",
        "metadata": {"name": f"w-{low}-{high}"},
        "spec": {"min": low, "max": high},
    }
    kube.custom.create_namespaced_custom_object("smoke.trtllm.dev", "v1", namespace, "widgets", body)


def test_cel_rule_rejects_bad_object(kube: Kube, namespace: str, widget_crd: str) -> None:
    def create_good() -> bool:
        try:
            _create_widget(kube, namespace, 1, 2)
            return True
        except client.ApiException as error:
            if error.status == 404:  # discovery not caught up yet
                return False
            raise

    wait_for(create_good, 30, what="a valid Widget accepted")
    with pytest.raises(client.ApiException) as rejected:
        _create_widget(kube, namespace, 5, 1)
    assert rejected.value.status == 422
    assert "spec.min must be ≤ spec.max" in rejected.value.body


def test_scheduler_places_gpu_job_by_compute_capability(kube: Kube, namespace: str) -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "nvidia.com/gpu.compute.major", "operator": "Gt", "values": ["8"]}
                        ]
                    }
                ]
            }
        }
    }
    job = {
        "metadata": {"name": "gpu-job"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "affinity": affinity,
                    "tolerations": [GPU_TOLERATION],
                    "containers": [_container(resources={"limits": {"nvidia.com/gpu": "2"}})],
                }
            },
        },
    }
    kube.batch.create_namespaced_job(namespace, job)
    done = wait_for(
        lambda: (kube.batch.read_namespaced_job_status("gpu-job", namespace).status.succeeded or 0) >= 1,
        60,
        what="gpu-job Succeeded",
    )
    assert done
    pods = kube.core.list_namespaced_pod(namespace, label_selector="job-name=gpu-job").items
    assert pods, "the Job controller created no pod"
    node = kube.core.read_node(pods[0].spec.node_name)
    assert node.metadata.labels["nvidia.com/gpu.product"] in {"NVIDIA-H100-80GB-HBM3", "NVIDIA-B200"}
    assert int(node.metadata.labels["nvidia.com/gpu.compute.major"]) > 8


def test_deployment_gets_replicaset_and_ready_pods(kube: Kube, namespace: str) -> None:
    labels = {"app": "web"}
    deployment = {
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [_container()]}},
        },
    }
    kube.apps.create_namespaced_deployment(namespace, deployment)
    wait_for(
        lambda: (
            (kube.apps.read_namespaced_deployment_status("web", namespace).status.ready_replicas or 0) == 2
        ),
        60,
        what="2 ready replicas",
    )
    replica_sets = kube.apps.list_namespaced_replica_set(namespace).items
    assert len(replica_sets) == 1
    assert replica_sets[0].metadata.owner_references[0].name == "web"


def test_too_many_gpus_stays_pending_with_failed_scheduling(kube: Kube, namespace: str) -> None:
    pod = {
        "metadata": {"name": "greedy"},
        "spec": {
            "tolerations": [GPU_TOLERATION],
            "containers": [_container(resources={"limits": {"nvidia.com/gpu": "9"}})],
        },
    }
    kube.core.create_namespaced_pod(namespace, pod)
    event = wait_for(
        lambda: next(
            (e for e in kube.events_for(namespace, "greedy") if e.reason == "FailedScheduling"), None
        ),
        60,
        what="FailedScheduling event",
    )
    assert "nvidia.com/gpu" in event.message
    assert kube.core.read_namespaced_pod("greedy", namespace).status.phase == "Pending"


def test_pod_finishes_with_chosen_exit_code_and_message(kube: Kube, namespace: str) -> None:
    """What the local pod executor relies on: KWOK reports the exit code and termination message we pick."""
    job = {
        "metadata": {"name": "held"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {"sim.trtllm.dev/hold": "true"}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [_container()],
                },
            },
        },
    }
    kube.batch.create_namespaced_job(namespace, job)
    pod = wait_for(
        lambda: next(
            (
                p
                for p in kube.core.list_namespaced_pod(namespace, label_selector="job-name=held").items
                if p.status.phase == "Running"
            ),
            None,
        ),
        60,
        what="held pod Running",
    )
    kube.finish_pod(namespace, pod.metadata.name, 10, '{"ok":false,"reason":"IncompatibleGPU"}')
    finished = wait_for(
        lambda: (
            (p := kube.core.read_namespaced_pod(pod.metadata.name, namespace)).status.phase == "Failed" and p
        ),
        30,
        what="pod Failed",
    )
    terminated = finished.status.container_statuses[0].state.terminated
    assert terminated.exit_code == 10
    assert terminated.message == '{"ok":false,"reason":"IncompatibleGPU"}'
    wait_for(
        lambda: any(
            c.type == "Failed" and c.status == "True"
            for c in kube.batch.read_namespaced_job_status("held", namespace).status.conditions or []
        ),
        60,
        what="Job Failed",
    )
