"""Per-CR overrides of the pod and container security contexts the operator renders.

By default every build, cleanup and serving pod meets the ``restricted`` Pod Security Standard: a
non-root UID/GID (with fsGroup, so the engine volume stays writable), no privilege escalation, every
capability dropped, seccomp RuntimeDefault. These models let an image that needs something else (a
different UID, root) say so per CR; a set field replaces the default, an unset one keeps it.
``privileged`` and host namespaces are not offered at all (the chart's admission policy refuses them).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from trtllm_operator.api.common import ApiModel, cel, validations

_MAX_ID = 2147483647
_ROOT_NEEDS_OPT_OUT = cel(
    "!has(self.runAsUser) || self.runAsUser != 0 || has(self.runAsNonRoot) && !self.runAsNonRoot",
    "runAsUser 0 is root, which the default runAsNonRoot: true refuses at container start; set "
    "runAsNonRoot: false as well (and expect Pod Security 'restricted' namespaces to refuse the pod)",
    field_path=".runAsUser",
)


class SeccompProfile(ApiModel):
    """A seccomp profile (core/v1 SeccompProfile)."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "self.type == 'Localhost' ? has(self.localhostProfile) : !has(self.localhostProfile)",
                "localhostProfile is required with type Localhost and forbidden otherwise",
                field_path=".localhostProfile",
            )
        )
    }

    type: Literal["RuntimeDefault", "Localhost", "Unconfined"] = Field(
        description="RuntimeDefault (the default), Localhost (a profile file on the node) or Unconfined."
    )
    localhostProfile: str | None = Field(
        default=None, description="Profile path relative to the kubelet's seccomp root.", max_length=256
    )


class Capabilities(ApiModel):
    """Linux capabilities to add or drop (core/v1 Capabilities)."""

    add: list[str] | None = Field(
        default=None,
        description="Capabilities to add, e.g. NET_BIND_SERVICE (the only one 'restricted' allows).",
        max_length=16,
        json_schema_extra={"items": {"type": "string", "maxLength": 64, "pattern": "^[A-Z_]+$"}},
    )
    drop: list[str] | None = Field(
        default=None,
        description="Capabilities to drop; the default drops ALL.",
        max_length=16,
        json_schema_extra={"items": {"type": "string", "maxLength": 64, "pattern": "^[A-Z_]+$"}},
    )


class PodSecurityContext(ApiModel):
    """Pod-level security settings; each set field replaces the operator's default."""

    model_config = ApiModel.model_config | {"json_schema_extra": validations(_ROOT_NEEDS_OPT_OUT)}

    runAsUser: int | None = Field(
        default=None, description="UID of every container (default 1000).", ge=0, le=_MAX_ID
    )
    runAsGroup: int | None = Field(default=None, description="Primary GID (default 1000).", ge=0, le=_MAX_ID)
    runAsNonRoot: bool | None = Field(
        default=None, description="Refuse to start a container as UID 0 (default true)."
    )
    fsGroup: int | None = Field(
        default=None,
        description="Group that owns (and may write) the volumes (default 1000).",
        ge=0,
        le=_MAX_ID,
    )
    fsGroupChangePolicy: Literal["OnRootMismatch", "Always"] | None = Field(
        default=None, description="When to re-own volume files (default OnRootMismatch: only when needed)."
    )
    supplementalGroups: list[int] | None = Field(
        default=None,
        description="Extra GIDs of every container.",
        max_length=32,
        json_schema_extra={"items": {"type": "integer", "minimum": 0, "maximum": 2147483647}},
    )
    seccompProfile: SeccompProfile | None = Field(
        default=None, description="Seccomp profile (default RuntimeDefault)."
    )


class SecurityContext(ApiModel):
    """Container-level security settings, applied to every container and init container of the pod."""

    model_config = ApiModel.model_config | {"json_schema_extra": validations(_ROOT_NEEDS_OPT_OUT)}

    runAsUser: int | None = Field(default=None, description="UID, overriding the pod's.", ge=0, le=_MAX_ID)
    runAsGroup: int | None = Field(default=None, description="GID, overriding the pod's.", ge=0, le=_MAX_ID)
    runAsNonRoot: bool | None = Field(default=None, description="Overrides the pod's runAsNonRoot.")
    allowPrivilegeEscalation: bool | None = Field(
        default=None, description="Allow setuid binaries to gain privileges (default false)."
    )
    readOnlyRootFilesystem: bool | None = Field(
        default=None, description="Mount the image read-only (default unset: writable, /tmp is used)."
    )
    capabilities: Capabilities | None = Field(
        default=None, description="Capabilities (default: drop ALL, add none)."
    )
    seccompProfile: SeccompProfile | None = Field(default=None, description="Overrides the pod's profile.")
