"""The multi-node group's SSH identity on a real cluster: the operator creates <service>-mpi-ssh once,
the LeaderWorkerSet's real pods mount it, a restarted operator neither duplicates nor changes it, a
hand-edited one stalls the service (not regenerated), deleting it generates a new one and the group
rolls; no key material reaches the operator's log, the service's events or its status. And the chart's
admission policy, on the real API server, confines the LeaderWorkerSets the operator may create.

Real: the operator, the LWS controller and webhooks (add-on "lws"), the API server's Secret storage,
the ValidatingAdmissionPolicy. Simulated: KWOK runs no sshd (the rendered sshd/ssh set-up is run for
real by hack/check_mpi_ssh.py and tests/unit/test_mpissh.py's OpenSSH checks).
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from tests.conftest import PrivateFleet
from tests.integration.test_gitops_and_least_privilege import _dry_run_create, _wait_denied, confined_operator
from tests.integration.test_multinode import LWS, get_lws, group_pods, lws_addon, services
from tests.integration.test_rbac import Identity
from tests.integration.test_validation_and_serving import Services, _service
from tests.support import Engines, Kube, OperatorProcess, engine_manifest, wait_for
from tests.unit.test_mpissh import identity_secret
from tests.unit.test_multinode import render
from trtllm_operator.api import constants as c
from trtllm_operator.api import reasons as r
from trtllm_operator.dev.cluster import LocalCluster
from trtllm_operator.reconcile.mpissh import ssh_identity
from trtllm_operator.render import mpissh
from trtllm_operator.render.mpissh import SshIdentity

pytestmark = pytest.mark.cluster
__all__ = ["confined_operator", "lws_addon", "services"]  # fixtures
SECRET = "chat-mpi-ssh"


def identities(kube: Kube, namespace: str) -> list[Any]:
    selector = f"{c.LABEL_MANAGED_BY}={c.MANAGED_BY},{c.LABEL_COMPONENT}={c.COMPONENT_MPI_SSH}"
    return list(kube.core.list_namespaced_secret(namespace, label_selector=selector).items)


def secret_dict(kube: Kube, secret: Any) -> dict[str, Any]:
    out: dict[str, Any] = kube.api.sanitize_for_serialization(secret)
    return out


def template_hash(kube: Kube, namespace: str) -> str:
    template = get_lws(kube, namespace, LWS)["spec"]["leaderWorkerTemplate"]
    leader = template["leaderTemplate"]["metadata"]["annotations"][mpissh.PUBLIC_KEY_ANNOTATION]
    worker = template["workerTemplate"]["metadata"]["annotations"][mpissh.PUBLIC_KEY_ANNOTATION]
    assert leader == worker
    return str(leader)


def secret_strings(secret: dict[str, Any]) -> list[str]:
    """Every piece of key material of the Secret, as stored (base64) and decoded (each long line and
    each key's base64 body)."""
    out = []
    for value in (secret.get("data") or {}).values():
        out.append(value)
        for line in base64.b64decode(value).decode().splitlines():
            if len(line) >= 40 and "PRIVATE KEY-----" not in line:
                out.append(line.split()[-1] if " " in line else line)
    return out


def assert_no_key_material(
    kube: Kube, namespace: str, services: Services, operator: OperatorProcess, secret: dict[str, Any]
) -> None:
    log = operator.output()
    events = json.dumps([(e.reason, e.message) for e in kube.core.list_namespaced_event(namespace).items])
    status = json.dumps(services.get("chat").get("status") or {})
    for text in secret_strings(secret):
        assert text not in log, "key material in the operator's log"
        assert text not in events, "key material in an event"
        assert text not in status, "key material in the service's status"


@pytest.mark.operator_env(private_fleet=True)
def test_ssh_identity_created_once_mounted_kept_across_restarts_and_rotated_on_delete(
    lws_addon: LocalCluster,
    kube: Kube,
    engines: Engines,
    services: Services,
    private_fleet: PrivateFleet,
    operator: OperatorProcess,
) -> None:
    namespace = engines.namespace
    private_fleet.add("h100", 2)
    engines.create(engine_manifest("big", parallelism={"tensor": 8, "pipeline": 2}))
    engines.wait_condition("big", "Ready", "True", timeout=180)
    services.create(_service("chat", "big", replicas=1, allowUnvalidatedEngines=True))
    services.wait("chat", "Ready", "True", timeout=180)

    # Created once: Opaque, owned by the service, labelled; its public keys' hash on both templates.
    [secret] = identities(kube, namespace)
    assert (secret.metadata.name, secret.type) == (SECRET, "Opaque")
    [owner] = secret.metadata.owner_references
    assert (owner.kind, owner.name, owner.controller) == (c.SERVICE_KIND, "chat", True)
    first = secret_dict(kube, secret)
    identity = ssh_identity("chat", first)
    assert isinstance(identity, SshIdentity)
    assert template_hash(kube, namespace) == identity.public_key_sha256

    # The real pods (made by LWS from our templates) mount it read-only, 0400, each its own side.
    leader, worker = group_pods(kube, namespace)
    for pod, items in ((leader, mpissh.LEADER_ITEMS), (worker, mpissh.WORKER_ITEMS)):
        [volume] = [v for v in pod.spec.volumes if v.name == mpissh.VOLUME]
        assert volume.secret.secret_name == SECRET
        assert volume.secret.default_mode == 0o400
        assert [i.key for i in volume.secret.items] == list(items)
        [mount] = [m for m in pod.spec.containers[0].volume_mounts if m.name == mpissh.VOLUME]
        assert (mount.mount_path, mount.read_only) == (mpissh.MOUNT_PATH, True)
    assert worker.spec.containers[0].command[0] == "/usr/sbin/sshd"
    events = kube.core.list_namespaced_event(namespace, field_selector="reason=MpiSshIdentityCreated").items
    assert [e.involved_object.name for e in events] == ["chat"]
    assert SECRET in events[0].message
    assert_no_key_material(kube, namespace, services, operator, first)

    # A restarted operator finds it in its cache: no second Secret, no change, the group not rolled.
    generation = get_lws(kube, namespace, LWS)["metadata"]["generation"]
    synced = operator.output().count("caches synced")
    operator.stop()
    operator.start()
    wait_for(lambda: operator.output().count("caches synced") > synced, 90, what="the operator to restart")
    # Touch the service so the restarted operator certainly reconciles it (a label: no new generation).
    kube.custom.patch_namespaced_custom_object(
        c.GROUP, c.VERSION, namespace, c.SERVICE_PLURAL, "chat", {"metadata": {"labels": {"touched": "1"}}}
    )
    services.wait("chat", "Ready", "True", timeout=60)
    [again] = identities(kube, namespace)
    assert (again.metadata.uid, again.metadata.resource_version) == (
        secret.metadata.uid,
        secret.metadata.resource_version,
    )
    assert get_lws(kube, namespace, LWS)["metadata"]["generation"] == generation

    # Edited by hand into something unusable: a condition saying to delete it; not regenerated.
    edited = base64.b64encode(b"restrict ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIedited\n").decode()
    kube.core.patch_namespaced_secret(SECRET, namespace, {"data": {mpissh.AUTHORIZED_KEYS: edited}})
    stalled = services.wait("chat", "Stalled", "True", reason=r.MPI_SSH_SECRET_INVALID, timeout=60)
    assert f"delete Secret {SECRET}" in stalled["message"]
    assert mpissh.AUTHORIZED_KEYS in stalled["message"]
    [kept] = identities(kube, namespace)
    assert kept.metadata.uid == secret.metadata.uid
    assert kept.data[mpissh.AUTHORIZED_KEYS] == edited
    assert operator.get("/readyz")[0] == 200

    # Deleted: a new identity, and the group rolls onto it (new pods with the new hash).
    old_leader_uid = leader.metadata.uid
    kube.core.delete_namespaced_secret(SECRET, namespace)

    def rotated() -> Any:
        found = identities(kube, namespace)
        return found[0] if len(found) == 1 and found[0].metadata.uid != secret.metadata.uid else None

    new = wait_for(rotated, 60, what="a new SSH identity Secret")
    new_identity = ssh_identity("chat", secret_dict(kube, new))
    assert isinstance(new_identity, SshIdentity)
    assert new_identity.public_key_sha256 != identity.public_key_sha256
    wait_for(
        lambda: template_hash(kube, namespace) == new_identity.public_key_sha256,
        60,
        what="the LeaderWorkerSet's templates to carry the new public-key hash",
    )

    def rolled() -> bool:
        pods = group_pods(kube, namespace)
        return len(pods) == 2 and all(
            p.metadata.uid != old_leader_uid
            and p.metadata.annotations.get(mpissh.PUBLIC_KEY_ANNOTATION) == new_identity.public_key_sha256
            for p in pods
        )

    wait_for(rolled, 180, what="the group's pods recreated with the new identity")
    services.wait("chat", "Ready", "True", timeout=180)
    assert len(identities(kube, namespace)) == 1
    assert_no_key_material(kube, namespace, services, operator, secret_dict(kube, new))


# ------------------------------------------------------------------ the chart's admission policy
def _lws(namespace: str) -> dict[str, Any]:
    """The LeaderWorkerSet the operator renders (with its SSH identity), in ``namespace``."""
    identity = ssh_identity("chat", identity_secret())
    assert isinstance(identity, SshIdentity)
    lws = render(ssh=identity)
    lws["metadata"]["namespace"] = namespace
    lws["metadata"]["name"] = "probe-lws"
    lws["metadata"].pop("ownerReferences")
    return lws


def _role(lws: dict[str, Any], role: str) -> dict[str, Any]:
    spec: dict[str, Any] = lws["spec"]["leaderWorkerTemplate"][role]["spec"]
    return spec


def test_admission_policy_confines_leader_worker_sets(
    lws_addon: LocalCluster, confined_operator: Identity, namespace: str
) -> None:
    """What the operator renders passes; a worker or leader pod that mounts another Secret, runs as
    another ServiceAccount, mounts a token, uses the host's namespaces or is privileged does not."""
    escalation = _lws("kube-system")
    _role(escalation, "workerTemplate")["serviceAccountName"] = "clusterrole-aggregation-controller"
    _wait_denied(confined_operator, escalation)
    assert _dry_run_create(confined_operator, _lws(namespace)) == (201, "")

    def case(role: str, **pod: Any) -> dict[str, Any]:
        lws = _lws(namespace)
        _role(lws, role).update(copy.deepcopy(pod))
        return lws

    other_secret = [{"name": "x", "secret": {"secretName": "hf-token"}}]
    cases = {
        "another Secret (worker)": (case("workerTemplate", volumes=other_secret), "SSH identity Secret"),
        "another Secret (leader)": (case("leaderTemplate", volumes=other_secret), "SSH identity Secret"),
        "hostPath": (
            case("workerTemplate", volumes=[{"name": "root", "hostPath": {"path": "/"}}]),
            "no hostPath",
        ),
        "ServiceAccount": (
            case("leaderTemplate", serviceAccountName="clusterrole-aggregation-controller"),
            "not clusterrole-aggregation-controller",
        ),
        "token": (case("workerTemplate", automountServiceAccountToken=True), "never mount a ServiceAccount"),
        "host network": (case("workerTemplate", hostNetwork=True), "host namespaces"),
    }
    privileged = _lws(namespace)
    _role(privileged, "workerTemplate")["containers"][0]["securityContext"] = {"privileged": True}
    cases["privileged"] = (privileged, "never privileged")
    for name, (lws, phrase) in cases.items():
        status, message = _dry_run_create(confined_operator, lws)
        assert status in (403, 422), f"{name}: admitted"
        assert phrase in message, (name, message)


# ------------------------------------------------------------------ the rendered sshd/ssh, for real
def test_the_rendered_sshd_and_ssh_log_in_as_the_non_root_pod_user() -> None:
    """hack/check_mpi_ssh.py: the workers' sshd command as UID 1000 on the Secret's files laid out as
    the kubelet mounts them, the leader's ssh -F ssh_config runs a command there (Debian's sshd,
    fetched once into ~/.cache/trtllm-operator/openssh). Uses no cluster: KWOK runs no sshd."""
    import subprocess
    import sys

    from tests.support import REPO

    result = subprocess.run(
        [sys.executable, str(REPO / "hack" / "check_mpi_ssh.py")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "rank-host-ok" in result.stdout
    assert "Accepted publickey" in result.stdout
