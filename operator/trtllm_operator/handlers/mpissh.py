"""Generate a multi-node group's SSH identity and create its Secret (render/mpissh.py), once.

Called when the service's decision says the Secret is absent from the (label-selected, watch-fed)
Secret cache. The name is deterministic, so a second create (a restarted operator, a cache that has
not seen ours yet) gets 409 and nothing is duplicated or overwritten. Key material stays in this
function and the API request: it is never logged, put in an event or in status.
"""

from __future__ import annotations

from typing import Any

import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from trtllm_operator.api import constants as c
from trtllm_operator.handlers.runtime import Runtime
from trtllm_operator.render.mpissh import render_secret, secret_data, secret_name

log = structlog.get_logger(__name__)


def _key_pair() -> tuple[str, str]:
    """A new ed25519 key pair in OpenSSH formats: (private, public)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    return private, public


def create_identity(rt: Runtime, obj: dict[str, Any]) -> None:
    """Create ``<service>-mpi-ssh`` for the InferenceService ``obj`` with new client and host key
    pairs; an existing one is kept (409). The event names the Secret, nothing of its content."""
    meta = obj["metadata"]
    namespace, service, uid = meta["namespace"], meta["name"], meta.get("uid", "")
    owner = {
        "apiVersion": c.API_VERSION,
        "kind": c.SERVICE_KIND,
        "name": service,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    client_private, client_public = _key_pair()
    host_private, host_public = _key_pair()
    secret = render_secret(
        owner, namespace, service, secret_data(client_private, client_public, host_private, host_public)
    )
    created = rt.kube.create(secret)
    log.info("mpi ssh identity", namespace=namespace, secret=secret_name(service), created=created)
    if created:
        rt.kube.post_event(
            obj,
            "Normal",
            "MpiSshIdentityCreated",
            f"generated the multi-node group's SSH identity, Secret {secret_name(service)} "
            "(delete it to rotate the keys: the groups then restart with new ones)",
        )
    else:  # 409: ours, not in the cache yet (it comes with the next watch event), or someone else's
        rt.kube.post_event(
            obj,
            "Warning",
            "MpiSshSecretExists",
            f"Secret {secret_name(service)} already exists but is not in the operator's cache yet; "
            f"if it lacks the labels {c.LABEL_MANAGED_BY}={c.MANAGED_BY}, "
            f"{c.LABEL_COMPONENT}={c.COMPONENT_MPI_SSH} it is not the operator's: delete it and a new "
            "SSH identity is generated",
        )
