"""Shared API building blocks: pod-level knobs and references, typed so the CRD schema is structural.

Every string has a maxLength and every list a maxItems: the API server bounds the cost of CEL rules
by them, and a missing bound makes it refuse the CRD.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

#: A Kubernetes quantity ("8Gi", "500m", 4): int-or-string as core types declare it.
Quantity = Annotated[
    int | str,
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$",
        }
    ),
]

#: A count or a percentage ("25%", 1), as Deployment rolling-update settings take.
IntOrPercent = Annotated[
    int | str,
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": r"^[0-9]+%?$",
        }
    ),
]

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


def cel(rule: str, message: str = "", *, message_expression: str = "", field_path: str = "") -> dict[str, Any]:
    """One ``x-kubernetes-validations`` entry."""
    entry: dict[str, Any] = {"rule": rule}
    if message:
        entry["message"] = message
    if message_expression:
        entry["messageExpression"] = message_expression
    if field_path:
        entry["fieldPath"] = field_path
    return entry


def defaults_of(model: type[BaseModel]) -> dict[str, Any]:
    """A model's all-defaults value, published as the schema default so nested fields default server-side."""
    value: dict[str, Any] = model().model_dump(mode="json", exclude_none=True)
    return value


def validations(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"x-kubernetes-validations": list(rules)}


class ApiModel(BaseModel):
    """Base for spec/status models: camelCase field names as written in YAML, unknown keys ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, validate_default=True)


class SecretKeyRef(ApiModel):
    """A key in a Secret of the same namespace. Secrets are only ever referenced, never inlined."""

    name: str = Field(
        description="Name of the Secret in the resource's namespace.", max_length=253, pattern=DNS_LABEL[:-1] + r"(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
    )
    key: str = Field(default="token", description="Key within the Secret.", max_length=253)


class LocalObjectRef(ApiModel):
    """A reference to an object of the same namespace by name."""

    name: str = Field(description="Name of the referenced object.", max_length=253, min_length=1)


class Toleration(ApiModel):
    """A pod toleration (core/v1 Toleration)."""

    key: str | None = Field(default=None, description="Taint key the toleration applies to; empty matches all keys with operator Exists.", max_length=316)
    operator: Literal["Exists", "Equal"] = Field(default="Equal", description="Exists or Equal.")
    value: str | None = Field(default=None, description="Taint value for operator Equal.", max_length=63)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to match; empty matches all effects."
    )
    tolerationSeconds: int | None = Field(
        default=None, description="For NoExecute: how long the pod stays bound after the taint appears.", ge=0
    )


class ResourceRequirements(ApiModel):
    """CPU/memory (and other) requests and limits. The operator adds the nvidia.com/gpu request itself."""

    requests: dict[str, Quantity] | None = Field(
        default=None, description="Minimum resources, e.g. {cpu: 8, memory: 64Gi}.", max_length=16
    )
    limits: dict[str, Quantity] | None = Field(default=None, description="Maximum resources.", max_length=16)
