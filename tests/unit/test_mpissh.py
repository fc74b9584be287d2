"""The multi-node group's SSH identity, pure parts: the Secret's contents (checked with the real OpenSSH
client tools), how leader and workers mount it, and the decision (create once, never regenerate, a
malformed Secret -> a condition that says to delete it, rotation rolls the group)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_reconcile_service import NOW, cond
from trtllm_operator.api import constants as c
from trtllm_operator.api import reasons as r
from trtllm_operator.handlers.mpissh import _key_pair
from trtllm_operator.k8s import rendered_hash
from trtllm_operator.reconcile.mpissh import SshProblem, ssh_identity
from trtllm_operator.reconcile.service import reconcile_service
from trtllm_operator.render import mpissh
from trtllm_operator.render.mpissh import SshIdentity

OWNER = {
    "apiVersion": c.API_VERSION,
    "kind": c.SERVICE_KIND,
    "name": "chat",
    "uid": "uid",
    "controller": True,
}


def identity_data() -> dict[str, str]:
    client_private, client_public = _key_pair()
    host_private, host_public = _key_pair()
    return mpissh.secret_data(client_private, client_public, host_private, host_public)


def as_cached(secret: dict[str, Any]) -> dict[str, Any]:
    """What the API server stores and the cache holds: stringData becomes base64 data."""
    out = {k: v for k, v in secret.items() if k != "stringData"}
    out["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in secret["stringData"].items()}
    return out


def identity_secret(data: dict[str, str] | None = None) -> dict[str, Any]:
    return as_cached(mpissh.render_secret(OWNER, "ns", "chat", data or identity_data()))


# ------------------------------------------------------------------ the Secret
def test_secret_is_an_opaque_owned_labelled_identity_that_authorizes_only_the_leader_key() -> None:
    data = identity_data()
    secret = mpissh.render_secret(OWNER, "ns", "chat", data)
    assert (secret["kind"], secret["type"], secret["metadata"]["name"]) == (
        "Secret",
        "Opaque",
        "chat-mpi-ssh",
    )
    assert secret["metadata"]["ownerReferences"] == [OWNER]
    assert secret["metadata"]["labels"] == {
        c.LABEL_MANAGED_BY: c.MANAGED_BY,
        c.LABEL_COMPONENT: c.COMPONENT_MPI_SSH,
        c.LABEL_SERVICE: "chat",
    }
    assert set(data) == set(mpissh.KEYS)
    assert data[mpissh.AUTHORIZED_KEYS] == f"restrict {data[mpissh.CLIENT_PUBLIC]}"
    assert data[mpissh.KNOWN_HOSTS] == f"* {data[mpissh.HOST_PUBLIC]}"
    assert data[mpissh.CLIENT_PUBLIC].startswith("ssh-ed25519 ")
    assert "BEGIN OPENSSH PRIVATE KEY" in data[mpissh.CLIENT_KEY]
    assert isinstance(ssh_identity("chat", as_cached(secret)), SshIdentity)


def _openssh(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} (OpenSSH client) is needed to check the generated keys")
    return path


def test_openssh_reads_the_generated_keys_the_config_and_the_pinned_host_key(tmp_path: Path) -> None:
    """The real ssh-keygen/ssh: the private key derives its public half, ssh -G takes the config, and
    the known_hosts pattern '*' matches a worker on the sshd port ('[host]:2222')."""
    data = identity_data()
    for key, text in data.items():
        (tmp_path / key).write_text(text)
        (tmp_path / key).chmod(0o600)
    derived = subprocess.run(
        [_openssh("ssh-keygen"), "-y", "-f", str(tmp_path / mpissh.CLIENT_KEY)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert derived.split()[:2] == data[mpissh.CLIENT_PUBLIC].split()[:2]
    config = subprocess.run(
        [_openssh("ssh"), "-G", "-F", str(tmp_path / mpissh.SSH_CONFIG), "chat-sm90-0-1.chat-sm90.ns"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert f"port {mpissh.MPI_SSH_PORT}" in config
    assert "stricthostkeychecking true" in config
    assert f"identityfile {mpissh.MOUNT_PATH}/{mpissh.CLIENT_KEY}" in config
    assert "batchmode yes" in config
    found = subprocess.run(
        [
            _openssh("ssh-keygen"),
            "-F",
            f"[chat-sm90-0-1.chat-sm90.ns]:{mpissh.MPI_SSH_PORT}",
            "-f",
            str(tmp_path / mpissh.KNOWN_HOSTS),
        ],
        capture_output=True,
        text=True,
    )
    assert found.returncode == 0
    assert data[mpissh.HOST_PUBLIC].split()[1] in found.stdout


# ------------------------------------------------------------------ mounts and commands
def _group(identity: SshIdentity) -> tuple[dict[str, Any], dict[str, Any]]:
    from tests.unit.test_multinode import render

    group = render(ssh=identity)["spec"]["leaderWorkerTemplate"]
    return group["leaderTemplate"], group["workerTemplate"]


def test_leader_mounts_the_client_side_and_workers_the_server_side_read_only_mode_0400() -> None:
    secret = identity_secret()
    identity = ssh_identity("chat", secret)
    assert isinstance(identity, SshIdentity)
    leader, worker = _group(identity)
    for template, items in ((leader, mpissh.LEADER_ITEMS), (worker, mpissh.WORKER_ITEMS)):
        [volume] = [v for v in template["spec"]["volumes"] if v["name"] == mpissh.VOLUME]
        assert volume["secret"]["secretName"] == "chat-mpi-ssh"
        assert volume["secret"]["defaultMode"] == 0o400
        assert [i["key"] for i in volume["secret"]["items"]] == list(items)
        [mount] = [m for m in template["spec"]["containers"][0]["volumeMounts"] if m["name"] == mpissh.VOLUME]
        assert mount == {"name": mpissh.VOLUME, "mountPath": mpissh.MOUNT_PATH, "readOnly": True}
        assert template["metadata"]["annotations"][mpissh.PUBLIC_KEY_ANNOTATION] == identity.public_key_sha256
    # The private client key never reaches a worker, the host key never the leader.
    assert mpissh.CLIENT_KEY not in mpissh.WORKER_ITEMS
    assert mpissh.HOST_KEY not in mpissh.LEADER_ITEMS
    # Only hashes of public keys are rendered: no key material in the LeaderWorkerSet.
    text = json.dumps([leader, worker])
    for key in mpissh.KEYS:
        decoded = base64.b64decode(secret["data"][key]).decode()
        for line in decoded.splitlines():
            if len(line) > 40:
                assert line.split()[-1] not in text


def test_sshd_runs_non_root_on_a_high_port_from_the_mounted_files_and_mpirun_uses_the_config() -> None:
    identity = ssh_identity("chat", identity_secret())
    assert isinstance(identity, SshIdentity)
    leader, worker = _group(identity)
    command = worker["spec"]["containers"][0]["command"]
    assert command[:5] == ["/usr/sbin/sshd", "-D", "-e", "-f", "/dev/null"]
    assert command[command.index("-p") + 1] == str(mpissh.MPI_SSH_PORT) == "2222"
    assert command[command.index("-h") + 1] == f"{mpissh.MOUNT_PATH}/{mpissh.HOST_KEY}"
    options = dict(command[i + 1].split("=", 1) for i, a in enumerate(command) if a == "-o")
    assert options["AuthorizedKeysFile"] == f"{mpissh.MOUNT_PATH}/{mpissh.AUTHORIZED_KEYS}"
    assert options["PidFile"] == "none"
    assert options["PasswordAuthentication"] == "no"
    assert worker["spec"]["securityContext"]["runAsNonRoot"] is True
    mpirun = leader["spec"]["containers"][0]["command"]
    assert mpirun[mpirun.index("plm_rsh_args") + 1] == f"-F {mpissh.MOUNT_PATH}/{mpissh.SSH_CONFIG}"


# ------------------------------------------------------------------ decisions
def test_a_valid_secret_is_an_identity_and_its_hash_covers_the_public_keys_only() -> None:
    data = identity_data()
    identity = ssh_identity("chat", identity_secret(data))
    assert identity == SshIdentity(
        "chat-mpi-ssh", mpissh.public_key_sha256(data[mpissh.CLIENT_PUBLIC], data[mpissh.HOST_PUBLIC])
    )
    assert ssh_identity("chat", None) is None


def _edited(key: str, value: str) -> dict[str, Any]:
    secret = identity_secret()
    secret["data"][key] = base64.b64encode(value.encode()).decode()
    return secret


@pytest.mark.parametrize(
    ("secret", "names"),
    [
        ({"data": {}}, "lacks"),
        ({"data": "garbage"}, "lacks"),
        (_edited(mpissh.CLIENT_KEY, "not a key"), mpissh.CLIENT_KEY),
        (_edited(mpissh.HOST_PUBLIC, identity_data()[mpissh.HOST_PUBLIC]), mpissh.HOST_KEY),
        (_edited(mpissh.AUTHORIZED_KEYS, "ssh-ed25519 AAAA other"), mpissh.AUTHORIZED_KEYS),
        (_edited(mpissh.KNOWN_HOSTS, ""), mpissh.KNOWN_HOSTS),
    ],
)
def test_a_malformed_secret_is_a_problem_naming_the_key_and_saying_delete_it(
    secret: dict[str, Any], names: str
) -> None:
    problem = ssh_identity("chat", secret)
    assert isinstance(problem, SshProblem)
    assert names in problem.message
    assert "delete Secret chat-mpi-ssh" in problem.message


def test_no_secret_creates_one_and_the_group_waits_for_it() -> None:
    from tests.unit.test_multinode import observe

    waiting = reconcile_service(observe(mpi_ssh_secret=None), NOW)
    assert waiting.create_mpi_ssh_secret is True
    assert [o["kind"] for o in waiting.apply] == ["Service"]  # no LeaderWorkerSet without its identity
    assert cond(waiting, r.READY)[0] == "False"
    present = reconcile_service(observe(), NOW)
    assert present.create_mpi_ssh_secret is False  # never regenerated
    assert [o["kind"] for o in present.apply] == ["Service", c.LWS_KIND]


def test_a_malformed_secret_stalls_the_service_and_is_not_regenerated() -> None:
    from tests.unit.test_multinode import lws_object, observe

    secret = _edited(mpissh.CLIENT_KEY, "edited by hand")
    decision = reconcile_service(
        observe(mpi_ssh_secret=secret, leader_worker_sets={"chat-sm90": lws_object()}), NOW
    )
    assert decision.create_mpi_ssh_secret is False
    assert [o["kind"] for o in decision.apply] == []
    assert decision.delete == []  # the running group is left alone
    status_, reason, message = cond(decision, r.STALLED)
    assert (status_, reason) == ("True", r.MPI_SSH_SECRET_INVALID)
    assert "delete Secret chat-mpi-ssh" in message
    dumped = json.dumps(decision.status.model_dump(mode="json"))
    assert secret["data"][mpissh.HOST_KEY] not in dumped
    assert "PRIVATE KEY" not in dumped


def test_a_new_secret_rolls_the_group_through_its_pod_template() -> None:
    from tests.unit.test_multinode import observe

    def lws(secret: dict[str, Any]) -> dict[str, Any]:
        [obj] = [
            o for o in reconcile_service(observe(mpi_ssh_secret=secret), NOW).apply if o["kind"] == c.LWS_KIND
        ]
        return obj

    first, same, rotated = identity_secret(), None, identity_secret()
    same = json.loads(json.dumps(first))
    assert rendered_hash(lws(first)) == rendered_hash(lws(same))
    before, after = lws(first), lws(rotated)
    assert rendered_hash(before) != rendered_hash(after)
    annotation = mpissh.PUBLIC_KEY_ANNOTATION
    leader_before = before["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["metadata"]["annotations"]
    leader_after = after["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["metadata"]["annotations"]
    assert leader_before[annotation] != leader_after[annotation]


# ------------------------------------------------------------------ the handler (recording Kube)
def test_the_handler_creates_the_secret_once_then_applies_the_group_and_never_logs_a_key() -> None:
    from structlog.testing import capture_logs

    from tests.unit.test_handlers import NS, runtime
    from tests.unit.test_multinode import H100_PAIR, big_engine
    from trtllm_operator.handlers import service as service_handler

    rt, kube = runtime()
    rt.gpu_nodes.clear()
    rt.gpu_nodes.update({n.name: n for n in H100_PAIR})
    big = big_engine()
    big["metadata"] = {"name": "big", "namespace": NS, "uid": "uid-big", "resourceVersion": "1"}
    rt.caches.engines.upsert(big)
    rt.caches.services.upsert(
        {
            "apiVersion": f"{c.GROUP}/{c.VERSION}",
            "kind": c.SERVICE_KIND,
            "metadata": {
                "name": "chat",
                "namespace": NS,
                "uid": "uid-chat",
                "generation": 1,
                "resourceVersion": "2",
            },
            "spec": {"engineRef": {"name": "big"}, "replicas": 1},
        }
    )
    key = (c.SERVICE_KIND, NS, "chat")
    with capture_logs() as logs:
        service_handler.reconcile(rt, key)
    calls = kube.take()
    assert ("create", "Secret", "chat-mpi-ssh") in calls
    assert ("event", "chat", "MpiSshIdentityCreated") in calls
    assert not [x for x in calls if x[:2] == ("apply", c.LWS_KIND)]  # the group waits for its identity
    created = kube.objects[("Secret", "chat-mpi-ssh")]
    assert created["metadata"]["ownerReferences"][0]["uid"] == "uid-chat"
    for text in created["stringData"].values():
        for line in text.splitlines():
            if len(line) >= 40 and "PRIVATE KEY-----" not in line:
                assert line.split()[-1] not in json.dumps(logs, default=str)

    rt.caches.secrets.upsert(
        {**as_cached(created), "metadata": {**created["metadata"], "resourceVersion": "3"}}
    )
    service_handler.reconcile(rt, key)
    calls = kube.take()
    assert not [x for x in calls if x[:2] == ("create", "Secret")]  # never regenerated
    assert ("apply", c.LWS_KIND, "chat-sm90") in calls


def test_a_secret_of_that_name_that_is_not_ours_is_reported_not_overwritten() -> None:
    from tests.unit.test_handlers import NS, runtime
    from trtllm_operator.handlers.mpissh import create_identity

    rt, kube = runtime()
    kube.create = lambda obj: False  # type: ignore[method-assign]  # the API server's 409
    service = {"metadata": {"name": "chat", "namespace": NS, "uid": "uid-chat"}}
    create_identity(rt, service)
    assert kube.take() == [("event", "chat", "MpiSshSecretExists")]
