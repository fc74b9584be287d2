"""The stand-in trtllm-serve's timing model: calibrated to the engine's benchmark, slower with load."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from trtllm_operator.dev.executor import serve_profile
from trtllm_operator.dev.standins.trtllm_serve import (
    Profile,
    decode_step_ms,
    parse,
    profile_from_env,
    ttft_ms,
)

PROFILE = Profile(ttft_ms=80.0, itl_ms=10.0, concurrency=64, max_batch=64, isl=128, osl=128)


def test_decode_step_equals_the_benchmarks_itl_at_its_concurrency() -> None:
    assert decode_step_ms(PROFILE, 64) == pytest.approx(10.0)


def test_decode_gets_slower_as_the_batch_fills_but_throughput_grows() -> None:
    steps = [decode_step_ms(PROFILE, n) for n in (1, 16, 64)]
    assert steps == sorted(steps)
    assert steps[0] < steps[-1]
    throughput = [n * 1000 / decode_step_ms(PROFILE, n) for n in (1, 16, 64)]
    assert throughput == sorted(throughput)  # batching pays, as on a GPU


def test_prefill_scales_with_prompt_length_and_load() -> None:
    assert ttft_ms(PROFILE, 64, 128) == pytest.approx(80.0)
    assert ttft_ms(PROFILE, 1, 128) < ttft_ms(PROFILE, 64, 128) < ttft_ms(PROFILE, 64, 512)


def test_knobs_apply_to_the_named_revisions_only() -> None:
    knobs = json.dumps({"slowdown": 3, "errorRate": 0.5, "healthy": False, "revisions": [2]})
    slow = profile_from_env({"TRTLLM_SIM_SERVE": knobs, "TRTLLM_SIM_REVISION": "2"}, None)
    assert (slow.slowdown, slow.error_rate, slow.healthy) == (3.0, 0.5, False)
    assert decode_step_ms(slow, 64) == pytest.approx(3 * decode_step_ms(replace(slow, slowdown=1.0), 64))
    other = profile_from_env({"TRTLLM_SIM_SERVE": knobs, "TRTLLM_SIM_REVISION": "1"}, None)
    assert (other.slowdown, other.error_rate, other.healthy) == (1.0, 0.0, True)


def test_profile_comes_from_the_engines_recorded_benchmark() -> None:
    engine = {
        "status": {
            "benchmark": {
                "outputTokensPerSecond": 6400.0,
                "concurrency": 64,
                "isl": 128,
                "osl": 128,
                "ttftMs": {"p50": 90.0},
                "revision": 3,
            }
        }
    }
    recorded = serve_profile(engine, "3")
    assert recorded["itlMs"] == pytest.approx(10.0)  # 64 streams sharing 6,400 tok/s
    assert "simulated benchmark of revision 3" in recorded["source"]
    profile = profile_from_env({"TRTLLM_SIM_SERVE_PROFILE": json.dumps(recorded)}, 8)
    assert (profile.itl_ms, profile.ttft_ms, profile.max_batch) == (10.0, 90.0, 8)
    assert serve_profile({"status": {}}, "1") == {}
    assert profile_from_env({}, None).source.startswith("assumed")


def test_accepts_the_arguments_the_operator_renders() -> None:
    argv = "/served/chat --host 0.0.0.0 --port 8000 --backend tensorrt --tp_size 2 --pp_size 1"
    args = parse([*argv.split(), "--max_batch_size", "32", "--kv_cache_free_gpu_memory_fraction", "0.9"])
    assert (args.model, args.port, args.max_batch_size) == ("/served/chat", 8000, 32)
