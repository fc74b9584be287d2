"""Status conditions done right: lastTransitionTime changes only when ``status`` flips.

The helpers are pure: they take the current list and return a new one, with a clock injected, so a
reconcile can compute the whole new status, compare it with the old and write only on difference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ConditionStatus = Literal["True", "False", "Unknown"]
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime) -> str:
    """Kubernetes' timestamp format, second precision, always UTC with a Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Condition(BaseModel):
    """One observation of the resource's state (Kubernetes API conventions)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    type: str = Field(description="Condition type, e.g. Ready, GPUCompatible, Built.", max_length=64)
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(description="CamelCase reason for the condition's last transition.", max_length=128)
    message: str = Field(
        default="", description="Human-readable explanation an admin can act on.", max_length=4096
    )
    observedGeneration: int | None = Field(
        default=None, description="metadata.generation this condition was computed from."
    )
    lastTransitionTime: str = Field(description="When status last changed (RFC 3339).", max_length=32)


def find(conditions: Iterable[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: Iterable[Condition], type_: str) -> bool:
    found = find(conditions, type_)
    return found is not None and found.status == "True"


def set_condition(
    conditions: Sequence[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str = "",
    *,
    generation: int | None = None,
    clock: Clock = utcnow,
) -> list[Condition]:
    """Return ``conditions`` with ``type_`` set; keeps lastTransitionTime unless ``status`` flips.

    Reason, message and observedGeneration are always refreshed. Order is preserved; a new type is
    appended.
    """
    old = find(conditions, type_)
    transition = old.lastTransitionTime if old is not None and old.status == status else rfc3339(clock())
    new = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message[:4096],
        observedGeneration=generation,
        lastTransitionTime=transition,
    )
    if old is None:
        return [*conditions, new]
    return [new if c.type == type_ else c for c in conditions]


def remove_condition(conditions: Sequence[Condition], type_: str) -> list[Condition]:
    return [c for c in conditions if c.type != type_]
