"""Status conditions: lastTransitionTime moves only when status flips; everything else is refreshed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from trtllm_operator.api.conditions import (
    Condition,
    find,
    is_true,
    remove_condition,
    rfc3339,
    set_condition,
)

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


class FakeClock:
    """A clock the test advances by hand."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _cond(type_: str, status: str = "True", reason: str = "Because", when: datetime = T0) -> Condition:
    return Condition.model_validate(
        {"type": type_, "status": status, "reason": reason, "lastTransitionTime": rfc3339(when)}
    )


def test_new_condition_is_appended_with_the_clock_time(clock: FakeClock) -> None:
    result = set_condition(
        [], "Ready", "False", "Building", "the build Job is running", generation=1, clock=clock
    )
    assert len(result) == 1
    ready = result[0]
    assert (ready.type, ready.status, ready.reason, ready.message) == (
        "Ready",
        "False",
        "Building",
        "the build Job is running",
    )
    assert ready.observedGeneration == 1
    assert ready.lastTransitionTime == "2026-03-01T12:00:00Z"


def test_same_status_keeps_last_transition_time_but_refreshes_the_rest(clock: FakeClock) -> None:
    first = set_condition([], "Ready", "False", "Building", "step 1 of 4", generation=1, clock=clock)
    clock.advance(3600)
    second = set_condition(first, "Ready", "False", "Validating", "running mmlu", generation=2, clock=clock)
    ready = second[0]
    assert ready.lastTransitionTime == first[0].lastTransitionTime == "2026-03-01T12:00:00Z"
    assert ready.reason == "Validating"
    assert ready.message == "running mmlu"
    assert ready.observedGeneration == 2


def test_status_flip_changes_last_transition_time(clock: FakeClock) -> None:
    first = set_condition([], "Ready", "False", "Building", generation=1, clock=clock)
    clock.advance(90)
    flipped = set_condition(
        first, "Ready", "True", "EnginePromoted", "engine ready", generation=1, clock=clock
    )
    assert flipped[0].status == "True"
    assert flipped[0].lastTransitionTime == "2026-03-01T12:01:30Z"
    clock.advance(30)
    back = set_condition(flipped, "Ready", "False", "NewRevision", generation=2, clock=clock)
    assert back[0].lastTransitionTime == "2026-03-01T12:02:00Z"


@pytest.mark.parametrize(("old", "new"), [("Unknown", "True"), ("True", "Unknown"), ("False", "Unknown")])
def test_any_status_change_counts_as_a_transition(clock: FakeClock, old: str, new: str) -> None:
    start = [_cond("Built", old, when=T0 - timedelta(days=1))]
    result = set_condition(start, "Built", new, "Changed", clock=clock)  # type: ignore[arg-type]
    assert result[0].lastTransitionTime == rfc3339(T0)


def test_generation_and_message_are_refreshed_even_to_empty(clock: FakeClock) -> None:
    first = set_condition([], "Stalled", "True", "BuildFailed", "exit code 10", generation=4, clock=clock)
    second = set_condition(first, "Stalled", "True", "BuildFailed", clock=clock)
    assert second[0].message == ""
    assert second[0].observedGeneration is None


def test_order_is_preserved_and_new_types_are_appended(clock: FakeClock) -> None:
    conditions = [_cond("Ready", "False"), _cond("Reconciling"), _cond("Built", "False")]
    clock.advance(10)
    updated = set_condition(conditions, "Reconciling", "False", "Done", clock=clock)
    assert [c.type for c in updated] == ["Ready", "Reconciling", "Built"]
    extended = set_condition(updated, "Validated", "Unknown", "NotConfigured", clock=clock)
    assert [c.type for c in extended] == ["Ready", "Reconciling", "Built", "Validated"]
    assert extended[:3] == updated


def test_untouched_conditions_are_kept_exactly(clock: FakeClock) -> None:
    built = _cond("Built", "True", "BuildSucceeded", when=T0 - timedelta(hours=2))
    conditions = [_cond("Ready", "False"), built]
    clock.advance(5)
    result = set_condition(conditions, "Ready", "True", "EnginePromoted", clock=clock)
    assert result[1] == built


def test_set_condition_does_not_mutate_its_input(clock: FakeClock) -> None:
    conditions = [_cond("Ready", "False", "Building")]
    snapshot = [c.model_copy() for c in conditions]
    clock.advance(60)
    set_condition(conditions, "Ready", "True", "EnginePromoted", clock=clock)
    set_condition(conditions, "Stalled", "False", "Healthy", clock=clock)
    assert conditions == snapshot


def test_unchanged_condition_compares_equal_so_the_caller_can_skip_the_write(clock: FakeClock) -> None:
    first = set_condition([], "Ready", "True", "EnginePromoted", "ok", generation=3, clock=clock)
    clock.advance(600)
    again = set_condition(first, "Ready", "True", "EnginePromoted", "ok", generation=3, clock=clock)
    assert again == first


def test_message_is_capped_at_the_schema_bound(clock: FakeClock) -> None:
    result = set_condition([], "Stalled", "True", "StepFailed", "x" * 10_000, clock=clock)
    assert len(result[0].message) == 4096


def test_find_and_is_true() -> None:
    conditions = [_cond("Ready", "True"), _cond("Stalled", "False"), _cond("Built", "Unknown")]
    found = find(conditions, "Stalled")
    assert found is not None
    assert found.status == "False"
    assert find(conditions, "Validated") is None
    assert find([], "Ready") is None
    assert is_true(conditions, "Ready")
    assert not is_true(conditions, "Stalled")
    assert not is_true(conditions, "Built")
    assert not is_true(conditions, "Validated")
    assert not is_true([], "Ready")


def test_find_works_on_any_iterable() -> None:
    conditions = (c for c in [_cond("Ready"), _cond("Built")])
    assert is_true(conditions, "Built")


def test_remove_condition() -> None:
    conditions = [_cond("Ready"), _cond("InflightBatchingDisabled"), _cond("Built")]
    result = remove_condition(conditions, "InflightBatchingDisabled")
    assert [c.type for c in result] == ["Ready", "Built"]
    assert len(conditions) == 3  # input untouched
    assert remove_condition(result, "NotThere") == result
    assert remove_condition([], "Ready") == []


def test_rfc3339_is_utc_with_z_and_second_precision() -> None:
    moment = datetime(2026, 3, 1, 14, 30, 15, 987654, tzinfo=timezone(timedelta(hours=2)))
    assert rfc3339(moment) == "2026-03-01T12:30:15Z"


def test_condition_status_is_restricted() -> None:
    with pytest.raises(ValidationError):
        Condition.model_validate(
            {"type": "Ready", "status": "Yes", "reason": "X", "lastTransitionTime": rfc3339(T0)}
        )
