"""Is a multi-node group's SSH identity Secret usable? Pure (reads the cached Secret, decides).

None: no Secret in the cache -> the operator creates one (handlers/mpissh.py), once: the name is
deterministic and a 409 means it exists. A Secret is never regenerated: one that doesn't hold two
matching ed25519 key pairs (someone edited it) is an ``MpiSshSecretInvalid`` problem whose message
says what to do (delete it: a new identity is generated and the groups roll). Messages name the
missing or bad *keys of the Secret*, never their content.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from trtllm_operator.render.mpissh import (
    AUTHORIZED_KEYS,
    CLIENT_KEY,
    CLIENT_PUBLIC,
    HOST_KEY,
    HOST_PUBLIC,
    KEYS,
    KNOWN_HOSTS,
    SshIdentity,
    public_key_sha256,
    secret_name,
)


@dataclass(frozen=True)
class SshProblem:
    message: str


def _text(data: dict[str, Any], key: str) -> str | None:
    raw = data.get(key)
    if not isinstance(raw, str):
        return None
    try:
        return base64.b64decode(raw, validate=True).decode("ascii")
    except (binascii.Error, ValueError):
        return None


def _pair_ok(private: str, public: str) -> bool:
    try:
        key = serialization.load_ssh_private_key(private.encode(), password=None)
        pub = serialization.load_ssh_public_key(public.strip().encode())
    except (ValueError, TypeError, binascii.Error):
        return False
    if not isinstance(key, Ed25519PrivateKey) or not isinstance(pub, Ed25519PublicKey):
        return False
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    return key.public_key().public_bytes(*raw) == pub.public_bytes(*raw)


def ssh_identity(service: str, secret: dict[str, Any] | None) -> SshIdentity | SshProblem | None:
    """The identity in the cached Secret ``<service>-mpi-ssh``; None when there is none."""
    if secret is None:
        return None
    name = secret_name(service)
    fix = (
        f"delete Secret {name} and the operator generates a new SSH identity "
        "(the LeaderWorkerSet's groups then restart with it)"
    )
    data = secret.get("data")
    data = data if isinstance(data, dict) else {}
    texts = {key: _text(data, key) for key in KEYS}
    missing = [key for key, value in texts.items() if value is None]
    if missing:
        return SshProblem(f"Secret {name} lacks (or has undecodable) {', '.join(missing)}: {fix}")
    client_private, client_public = texts[CLIENT_KEY] or "", texts[CLIENT_PUBLIC] or ""
    host_private, host_public = texts[HOST_KEY] or "", texts[HOST_PUBLIC] or ""
    bad = []
    if not _pair_ok(client_private, client_public):
        bad.append(f"{CLIENT_KEY}/{CLIENT_PUBLIC} (not a matching ed25519 key pair)")
    if not _pair_ok(host_private, host_public):
        bad.append(f"{HOST_KEY}/{HOST_PUBLIC} (not a matching ed25519 key pair)")
    if client_public.strip() not in (texts[AUTHORIZED_KEYS] or ""):
        bad.append(f"{AUTHORIZED_KEYS} (does not authorize {CLIENT_PUBLIC})")
    if host_public.strip() not in (texts[KNOWN_HOSTS] or ""):
        bad.append(f"{KNOWN_HOSTS} (does not pin {HOST_PUBLIC})")
    if bad:
        return SshProblem(f"Secret {name} is not a usable SSH identity: {'; '.join(bad)}: {fix}")
    return SshIdentity(name, public_key_sha256(client_public, host_public))
