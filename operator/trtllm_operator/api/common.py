"""Shared API building blocks: pod-level knobs and references, typed so the CRD schema is structural.

Every string has a maxLength and every list a maxItems: the API server bounds the cost of CEL rules
by them, and a missing bound makes it refuse the CRD.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from trtllm_operator.api.constants import ENGINE_NAME_MAX

_QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)


def _quantity_schema(rule: str, message: str) -> dict[str, Any]:
    """int-or-string with the core quantity pattern, plus one CEL rule on its value.

    The rule is guarded by ``isQuantity`` so a malformed value reports only the pattern error, never a CEL
    evaluation error.
    """
    return {
        "x-kubernetes-int-or-string": True,
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "pattern": _QUANTITY_PATTERN,
        "maxLength": 64,
        "x-kubernetes-validations": [
            {"rule": f"!isQuantity(string(self)) || {rule}", "message": message},
        ],
    }


#: A Kubernetes quantity ("8Gi", "500m", 4): int-or-string as core types declare it; never negative.
Quantity = Annotated[
    int | str,
    WithJsonSchema(
        _quantity_schema("!quantity(string(self)).isLessThan(quantity('0'))", "must not be negative")
    ),
]

#: A quantity that must be above zero, such as a volume size.
PositiveQuantity = Annotated[
    int | str,
    WithJsonSchema(
        _quantity_schema(
            "quantity(string(self)).isGreaterThan(quantity('0'))", "must be greater than zero, e.g. 200Gi"
        )
    ),
]

#: A count or a percentage ("25%", 1), as Deployment rolling-update settings take: a string must be a
#: percentage (the Deployment API refuses "1" as a string) and a percentage is at most 100%.
IntOrPercent = Annotated[
    int | str,
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": r"^[0-9]+%$",
            "maxLength": 8,
            "minimum": 0,
            "x-kubernetes-validations": [
                {
                    "rule": "!string(self).endsWith('%') || string(self).matches('^0*(100|[0-9]{1,2})%$')",
                    "message": "must not be greater than 100%",
                },
            ],
        }
    ),
]

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
#: A Kubernetes object name (RFC 1123 subdomain): what the API server demands of a PriorityClass,
#: StorageClass, Secret, ... name. Checked at admission so a bad name never reaches an apply.
DNS_SUBDOMAIN = rf"^{_DNS_SUBDOMAIN}$"
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
#: A label key: an optional DNS-subdomain prefix and "/", then a name of at most 63 characters. The
#: prefix's 253-character limit is checked separately (``label_key_rule``): RE2 cannot count it.
LABEL_KEY = rf"^({_DNS_SUBDOMAIN}/)?{_LABEL_NAME}$"
#: A label value: empty, or at most 63 letters, digits, '-', '_', '.', alphanumeric at both ends.
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
#: A ".." path segment (in a path or a pvc:// URI): a cleanup Job must never climb out of its directory.
DOTDOT_SEGMENT = r"(^|/)\.\.(/|$)"

LABEL_KEY_HELP = (
    "an optional DNS-subdomain prefix (at most 253 characters) and '/', then a name of at most 63 "
    "letters, digits, '-', '_' or '.' that starts and ends with a letter or digit, e.g. "
    "nvidia.com/gpu.product or pool"
)


def label_key_rule(var: str) -> str:
    """CEL: ``var`` is a valid label key."""
    return f"{var}.matches(r'{LABEL_KEY}') && {var}.indexOf('/') <= 253"


def object_name_rule(field: str, kind: str) -> dict[str, Any]:
    """CEL on a string field: a valid object name, with a message naming the field and the fix."""
    return cel(
        f"self.size() <= 253 && self.matches(r'{DNS_SUBDOMAIN}')",
        message_expression=f'"{field} \'" + self + "\' is not a valid {kind} name: use lowercase letters, '
        "digits, '-' and '.', starting and ending with a letter or digit (RFC 1123 subdomain)\"",
    )


def no_dotdot_rule(var: str) -> str:
    """CEL: ``var`` has no ".." path segment."""
    return f"!{var}.matches(r'{DOTDOT_SEGMENT}')"


def cel(
    rule: str, message: str = "", *, message_expression: str = "", field_path: str = ""
) -> dict[str, Any]:
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
        description="Name of the Secret in the resource's namespace.",
        max_length=253,
        pattern=DNS_LABEL[:-1] + r"(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
    )
    key: str = Field(default="token", description="Key within the Secret.", max_length=253)


class LocalObjectRef(ApiModel):
    """A reference to an object of the same namespace by name."""

    name: str = Field(description="Name of the referenced object.", max_length=253, min_length=1)


class EngineRef(ApiModel):
    """A reference to a TRTEngine of the same namespace by name."""

    name: str = Field(
        description=f"Name of the TRTEngine: a DNS label of at most {ENGINE_NAME_MAX} characters.",
        min_length=1,
        max_length=ENGINE_NAME_MAX,
        pattern=DNS_LABEL,
    )


class Toleration(ApiModel):
    """A pod toleration (core/v1 Toleration)."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "has(self.operator) && self.operator == 'Exists' || has(self.key) && self.key != ''",
                "operator must be Exists when key is empty (an empty key matches every taint); set key "
                "or use operator Exists",
                field_path=".operator",
            ),
            cel(
                "!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
                "value must be empty when operator is Exists (Exists matches any value); remove value or "
                "use operator Equal",
                field_path=".value",
            ),
            cel(
                "!has(self.tolerationSeconds) || has(self.effect) && self.effect == 'NoExecute'",
                "effect must be NoExecute when tolerationSeconds is set (only NoExecute taints evict)",
                field_path=".tolerationSeconds",
            ),
        )
    }

    key: str | None = Field(
        default=None,
        description="Taint key the toleration applies to; empty matches all keys with operator Exists.",
        max_length=317,
        json_schema_extra=validations(
            cel(f"self == '' || ({label_key_rule('self')})", f"must be a valid label key: {LABEL_KEY_HELP}")
        ),
    )
    operator: Literal["Exists", "Equal"] = Field(default="Equal", description="Exists or Equal.")
    value: str | None = Field(
        default=None, description="Taint value for operator Equal.", max_length=63, pattern=LABEL_VALUE
    )
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to match; empty matches all effects."
    )
    tolerationSeconds: int | None = Field(
        default=None, description="For NoExecute: how long the pod stays bound after the taint appears.", ge=0
    )


_REQUEST_ABOVE_LIMIT = (
    "k in self.limits && isQuantity(string(self.requests[k])) && isQuantity(string(self.limits[k])) && "
    "quantity(string(self.requests[k])).isGreaterThan(quantity(string(self.limits[k])))"
)


class ResourceRequirements(ApiModel):
    """CPU/memory (and other) requests and limits. The operator adds the nvidia.com/gpu request itself."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                f"!has(self.requests) || !has(self.limits) || "
                f"!self.requests.exists(k, {_REQUEST_ABOVE_LIMIT})",
                "requests must be less than or equal to limits for the same resource (e.g. requests.memory "
                "≤ limits.memory): lower the request or raise the limit",
                field_path=".requests",
            )
        )
    }

    requests: dict[str, Quantity] | None = Field(
        default=None, description="Minimum resources, e.g. {cpu: 8, memory: 64Gi}.", max_length=16
    )
    limits: dict[str, Quantity] | None = Field(default=None, description="Maximum resources.", max_length=16)


def node_selector_schema() -> dict[str, Any]:
    """Schema extras of a nodeSelector map: label keys (CEL) and label values (pattern)."""
    return {
        "additionalProperties": {"type": "string", "maxLength": 63, "pattern": LABEL_VALUE},
        **validations(
            cel(
                f"self.all(k, {label_key_rule('k')})",
                f"keys must be valid label keys: {LABEL_KEY_HELP}",
            )
        ),
    }
