"""GPU knowledge, table by table, against shared/reference/trtllm.md.

The CEL side of the same rules is checked against the real API server in
tests/integration/test_cel_matches_knowledge.py.
"""

from __future__ import annotations

import copy
from typing import Any, get_args

import pytest

from trtllm_operator.api import reasons
from trtllm_operator.api.engine import Backend, KvCacheDtype, Precision
from trtllm_operator.gpu import (
    GFD,
    GPU_PRODUCTS,
    KV_MIN_CC,
    PRECISION_MIN_CC,
    ComputeCapability,
    Problem,
    arch_name,
    compatibility_problems,
    facts_from_node,
    parse_cc,
    product_cc,
    supported_precisions,
)

CC = ComputeCapability

#: trtllm.md "GPUs": compute capability per GPU model, exactly as documented.
DOCUMENTED_GPUS: dict[str, str] = {
    "V100": "7.0",
    "T4": "7.5",
    "A100": "8.0",
    "A10": "8.6",
    "A40": "8.6",
    "A16": "8.6",
    "A2": "8.6",
    "L4": "8.9",
    "L40": "8.9",
    "L40S": "8.9",
    "H100": "9.0",
    "H200": "9.0",
    "GH200": "9.0",
    "B200": "10.0",
    "GB200": "10.0",
    "B300": "10.3",
    "GB300": "10.3",
    "RTX-PRO-6000-Blackwell": "12.0",
}

#: trtllm.md "Precision vs GPU compute capability".
DOCUMENTED_PRECISION_MIN = {
    "fp16": "7.0",
    "bf16": "8.0",
    "int8_sq": "8.0",
    "int8_wo": "8.0",
    "int4_wo": "8.0",
    "int4_awq": "8.0",
    "fp8": "8.9",
    "w4a8_awq": "8.9",
    "nvfp4": "10.0",
}
DOCUMENTED_KV_MIN = {"auto": "7.0", "fp16": "7.0", "int8": "8.0", "fp8": "8.9"}

ENGINE_INT_FORMATS = ["int8_sq", "int8_wo", "int4_wo", "int4_awq", "w4a8_awq"]
CCS = ["7.0", "7.5", "8.0", "8.6", "8.9", "9.0", "10.0", "10.3", "12.0"]


def _model_of(product: str) -> str:
    """The documented GPU model a GFD product name is of ("NVIDIA-A100-SXM4-80GB" -> "A100")."""
    if "RTX-PRO-6000-Blackwell" in product:
        return "RTX-PRO-6000-Blackwell"
    matches = [token for token in product.split("-") if token in DOCUMENTED_GPUS]
    assert len(matches) == 1, f"{product}: cannot tell which documented GPU this is ({matches})"
    return matches[0]


# ------------------------------------------------------------------------------------- products


@pytest.mark.parametrize("product", sorted(GPU_PRODUCTS))
def test_every_product_maps_to_the_documented_cc(product: str) -> None:
    assert str(GPU_PRODUCTS[product]) == DOCUMENTED_GPUS[_model_of(product)]


def test_every_documented_gpu_has_a_product() -> None:
    covered = {_model_of(product) for product in GPU_PRODUCTS}
    assert covered == set(DOCUMENTED_GPUS)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("NVIDIA-H100-80GB-HBM3", CC(9, 0)),
        ("NVIDIA H100 80GB HBM3", CC(9, 0)),  # NVML spelling, before GFD replaces spaces
        ("NVIDIA-H100-80GB-HBM3-SHARED", CC(9, 0)),  # time-sliced GPUs get the -SHARED suffix
        ("NVIDIA-A100-SXM4-80GB", CC(8, 0)),
        ("NVIDIA-L40S", CC(8, 9)),
        ("NVIDIA-B200", CC(10, 0)),
        ("NVIDIA-Unknown-9000", None),
        ("", None),
    ],
)
def test_product_cc(name: str, expected: ComputeCapability | None) -> None:
    assert product_cc(name) == expected


# ------------------------------------------------------------------------------ precision tables


def test_precision_table_matches_the_reference() -> None:
    assert {p: str(cc) for p, cc in PRECISION_MIN_CC.items()} == DOCUMENTED_PRECISION_MIN


def test_kv_table_matches_the_reference() -> None:
    assert {k: str(cc) for k, cc in KV_MIN_CC.items()} == DOCUMENTED_KV_MIN


def test_knowledge_covers_every_api_enum_value() -> None:
    """A precision or KV dtype the CRD accepts but the knowledge does not know would be InvalidSpec later."""
    assert set(get_args(Precision)) == set(PRECISION_MIN_CC)
    assert set(get_args(KvCacheDtype)) == set(KV_MIN_CC)
    assert set(get_args(Backend)) == {"tensorrt", "pytorch"}


@pytest.mark.parametrize("precision", sorted(DOCUMENTED_PRECISION_MIN))
def test_precision_minimum_is_the_boundary(precision: str) -> None:
    need = parse_cc(DOCUMENTED_PRECISION_MIN[precision])
    below = [parse_cc(cc) for cc in CCS if parse_cc(cc) < need]
    at_or_above = [parse_cc(cc) for cc in CCS if parse_cc(cc) >= need]
    for cc in below:
        problems = compatibility_problems(precision, "auto", "pytorch", cc)
        assert [p.field for p in problems] == ["spec.precision"], (precision, cc)
        assert problems[0].reason == reasons.PRECISION_UNSUPPORTED
        assert f"≥ {need}" in problems[0].message
    for cc in at_or_above:
        assert compatibility_problems(precision, "auto", "pytorch", cc) == [], (precision, cc)


def _cc_boundary(problems: list[Problem]) -> list[Problem]:
    """Only the compute-capability problems (not backend rules such as pytorch's missing INT8 KV cache)."""
    return [p for p in problems if "needs compute capability" in p.message]


@pytest.mark.parametrize("kv", sorted(DOCUMENTED_KV_MIN))
def test_kv_minimum_is_the_boundary(kv: str) -> None:
    need = parse_cc(DOCUMENTED_KV_MIN[kv])
    for text in CCS:
        cc = parse_cc(text)
        problems = _cc_boundary(compatibility_problems("fp16", kv, "pytorch", cc))
        if cc < need:
            assert [p.field for p in problems] == ["spec.kvCacheDtype"], (kv, cc)
            assert f"≥ {need}" in problems[0].message
        else:
            assert problems == [], (kv, cc)


# ------------------------------------------------------------------------------------- messages


def test_fp8_on_a100_names_the_minimum_the_gpu_and_the_alternatives() -> None:
    problems = compatibility_problems("fp8", "auto", "tensorrt", CC(8, 0), gpu="NVIDIA-A100-SXM4-80GB")
    assert len(problems) == 1
    problem = problems[0]
    assert problem.field == "spec.precision"
    assert problem.reason == reasons.PRECISION_UNSUPPORTED
    for needle in ("fp8", "8.9", "NVIDIA-A100-SXM4-80GB", "8.0", "int8_sq", "int4_awq", "Hopper"):
        assert needle in problem.message, needle


def test_message_without_a_product_names_the_target_cc() -> None:
    (problem,) = compatibility_problems("fp8", "auto", "tensorrt", CC(8, 6))
    assert "the target is 8.6" in problem.message


def test_nvfp4_on_h100_points_to_fp8_or_blackwell() -> None:
    (problem,) = compatibility_problems("nvfp4", "auto", "tensorrt", CC(9, 0), gpu="NVIDIA-H100-80GB-HBM3")
    for needle in ("10.0", "NVIDIA-H100-80GB-HBM3", "fp8", "Blackwell"):
        assert needle in problem.message, needle


def test_bf16_on_t4_suggests_fp16() -> None:
    (problem,) = compatibility_problems("bf16", "auto", "tensorrt", CC(7, 5), gpu="Tesla-T4")
    assert "8.0" in problem.message
    assert "fp16" in problem.message


def test_fp8_kv_on_a100_is_a_kv_problem() -> None:
    problems = compatibility_problems("int8_sq", "fp8", "tensorrt", CC(8, 0))
    assert [p.field for p in problems] == ["spec.kvCacheDtype"]
    assert "8.9" in problems[0].message
    assert "auto" in problems[0].message


@pytest.mark.parametrize(
    ("kv", "cc", "suggestion"),
    [
        ("fp8", CC(8, 0), "use kvCacheDtype int8 or auto"),
        ("fp8", CC(8, 6), "use kvCacheDtype int8 or auto"),
        ("fp8", CC(7, 5), "use kvCacheDtype auto or fp16"),
        ("int8", CC(7, 5), "use kvCacheDtype auto or fp16"),
        ("int8", CC(7, 0), "use kvCacheDtype auto or fp16"),
    ],
)
def test_kv_suggestion_only_names_dtypes_the_gpu_supports(kv: str, cc: CC, suggestion: str) -> None:
    (problem,) = _cc_boundary(compatibility_problems("fp16", kv, "pytorch", cc))
    assert suggestion in problem.message
    if cc < CC(8, 0):
        assert "int8" not in problem.message.split("—", 1)[1]


def test_problems_accumulate() -> None:
    problems = compatibility_problems("fp8", "fp8", "tensorrt", CC(8, 0))
    assert [p.field for p in problems] == ["spec.precision", "spec.kvCacheDtype"]


def test_unknown_values_are_invalid_spec_not_crashes() -> None:
    problems = compatibility_problems("fp4", "bf16", "tensorrt", CC(9, 0))
    assert [(p.field, p.reason) for p in problems] == [
        ("spec.precision", reasons.INVALID_SPEC),
        ("spec.kvCacheDtype", reasons.INVALID_SPEC),
    ]


# ----------------------------------------------------------------- SM >= 10.0 engine-path exclusions


@pytest.mark.parametrize("cc", ["10.0", "10.3", "11.0"])
@pytest.mark.parametrize("precision", ENGINE_INT_FORMATS)
def test_tensorrt_rejects_integer_formats_on_blackwell(cc: str, precision: str) -> None:
    problems = compatibility_problems(precision, "auto", "tensorrt", parse_cc(cc), gpu="NVIDIA-B200")
    assert [p.field for p in problems] == ["spec.precision"]
    message = problems[0].message
    assert "SM 10.x-11.x" in message
    assert "INT8/INT4 quantization is not supported on SM>=100." in message
    assert "backend pytorch" in message
    assert compatibility_problems(precision, "auto", "pytorch", parse_cc(cc)) == []


@pytest.mark.parametrize("precision", ENGINE_INT_FORMATS)
def test_tensorrt_integer_formats_are_fine_before_blackwell(precision: str) -> None:
    assert compatibility_problems(precision, "auto", "tensorrt", CC(9, 0)) == []


@pytest.mark.parametrize("precision", ENGINE_INT_FORMATS)
def test_tensorrt_integer_formats_are_fine_on_sm_12(precision: str) -> None:
    """builder.py refuses them only for 100 <= SM < 120: the RTX PRO 6000 Blackwell (12.0) builds them."""
    assert compatibility_problems(precision, "auto", "tensorrt", CC(12, 0)) == []
    assert compatibility_problems("fp8", "int8", "tensorrt", CC(12, 0)) == []


@pytest.mark.parametrize("precision", ["fp16", "bf16", "fp8", "nvfp4"])
def test_tensorrt_float_formats_are_fine_on_blackwell(precision: str) -> None:
    assert compatibility_problems(precision, "auto", "tensorrt", CC(10, 0)) == []


@pytest.mark.parametrize("cc", ["10.0", "10.3"])
def test_tensorrt_rejects_int8_kv_on_blackwell(cc: str) -> None:
    problems = compatibility_problems("fp8", "int8", "tensorrt", parse_cc(cc))
    assert [p.field for p in problems] == ["spec.kvCacheDtype"]
    assert "fp8" in problems[0].message
    assert compatibility_problems("fp8", "int8", "tensorrt", CC(9, 0)) == []


@pytest.mark.parametrize("cc", CCS)
def test_pytorch_backend_has_no_int8_kv_cache_on_any_gpu(cc: str) -> None:
    """ModelOpt's HF export refuses an INT8 KV cache ("Invalid KV cache quantization format")."""
    backend_problems = [
        p
        for p in compatibility_problems("fp8", "int8", "pytorch", parse_cc(cc))
        if "pytorch backend" in p.message
    ]
    assert [p.field for p in backend_problems] == ["spec.kvCacheDtype"]
    assert "use kvCacheDtype fp8" in backend_problems[0].message


# ---------------------------------------------------------------------------- supported precisions

FP = ["fp16"]
AMPERE = ["fp16", "bf16", "int8_sq", "int8_wo", "int4_wo", "int4_awq"]
ADA = [*AMPERE, "fp8", "w4a8_awq"]
ALL = [*ADA, "nvfp4"]
BLACKWELL_ENGINE = ["fp16", "bf16", "fp8", "nvfp4"]


@pytest.mark.parametrize(
    ("cc", "tensorrt", "pytorch"),
    [
        ("7.0", FP, FP),
        ("7.5", FP, FP),
        ("8.0", AMPERE, AMPERE),
        ("8.6", AMPERE, AMPERE),
        ("8.9", ADA, ADA),
        ("9.0", ADA, ADA),
        ("10.0", BLACKWELL_ENGINE, ALL),
        ("10.3", BLACKWELL_ENGINE, ALL),
        ("12.0", ALL, ALL),
        ("6.1", [], []),
    ],
)
def test_supported_precisions_per_architecture(cc: str, tensorrt: list[str], pytorch: list[str]) -> None:
    assert sorted(supported_precisions("tensorrt", parse_cc(cc))) == sorted(tensorrt)
    assert sorted(supported_precisions("pytorch", parse_cc(cc))) == sorted(pytorch)


# --------------------------------------------------------------------------- compute capabilities


@pytest.mark.parametrize(
    ("text", "expected"),
    [("9.0", CC(9, 0)), ("8.9", CC(8, 9)), ("10.0", CC(10, 0)), ("12.0", CC(12, 0)), (" 7.5 ", CC(7, 5))],
)
def test_parse_cc(text: str, expected: ComputeCapability) -> None:
    assert parse_cc(text) == expected
    assert str(parse_cc(text)) == text.strip()


@pytest.mark.parametrize(
    "text", ["9", "9.0.1", "abc", "", "9.", ".9", "9.10", "100.0", "v9.0", "-9.0", "9,0", "9.0a"]
)
def test_parse_cc_rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError, match=r"compute capability must look like '9\.0'"):
        parse_cc(text)


def test_cc_orders_numerically_not_as_strings() -> None:
    assert CC(8, 9) < CC(9, 0) < CC(10, 0) < CC(10, 3) < CC(12, 0)
    assert "10.0" < "9.0"  # the reason the tuple exists
    assert sorted(parse_cc(t) for t in ["10.0", "9.0", "8.9", "12.0"]) == [
        CC(8, 9),
        CC(9, 0),
        CC(10, 0),
        CC(12, 0),
    ]


@pytest.mark.parametrize(
    ("cc", "name"),
    [
        (CC(7, 0), "Volta"),
        (CC(7, 5), "Turing"),
        (CC(8, 0), "Ampere"),
        (CC(8, 6), "Ampere"),
        (CC(8, 9), "Ada"),
        (CC(9, 0), "Hopper"),
        (CC(10, 0), "Blackwell"),
        (CC(10, 3), "Blackwell"),
        (CC(12, 0), "Blackwell"),
        (CC(8, 7), "Ampere"),  # Jetson Orin: not in the table, nearest known below
        (CC(6, 1), "pre-Volta"),
    ],
)
def test_arch_name(cc: ComputeCapability, name: str) -> None:
    assert arch_name(cc) == name


# ---------------------------------------------------------------------------------- node labels


def _node(**overrides: Any) -> dict[str, Any]:
    node: dict[str, Any] = {
        "metadata": {
            "name": "gpu-h100-0",
            "labels": {
                GFD.PRODUCT: "NVIDIA-H100-80GB-HBM3",
                GFD.COMPUTE_MAJOR: "9",
                GFD.COMPUTE_MINOR: "0",
                GFD.COUNT: "8",
                GFD.MEMORY: "81559",
                GFD.FAMILY: "hopper",
            },
        },
        "spec": {"taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]},
        "status": {
            "allocatable": {GFD.RESOURCE: "8"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    for key, value in overrides.items():
        node[key] = value
    return node


def _with_labels(**labels: Any) -> dict[str, Any]:
    node = _node()
    merged = {**node["metadata"]["labels"], **labels}
    node["metadata"]["labels"] = {k: v for k, v in merged.items() if v is not None}
    return node


def test_facts_from_a_good_node() -> None:
    facts = facts_from_node(_node())
    assert facts is not None
    assert facts.name == "gpu-h100-0"
    assert facts.product == "NVIDIA-H100-80GB-HBM3"
    assert facts.cc == CC(9, 0)
    assert (facts.gpu_count, facts.allocatable, facts.memory_mib) == (8, 8, 81559)
    assert facts.ready
    assert facts.schedulable
    assert facts.usable
    assert facts.taints == (("nvidia.com/gpu", "NoSchedule"),)


def test_facts_route_on_compute_labels_not_family() -> None:
    """Older GFD reports 8.9 (Ada) as family ampere: the compute labels win."""
    facts = facts_from_node(
        _with_labels(**{GFD.COMPUTE_MAJOR: "8", GFD.COMPUTE_MINOR: "9", GFD.FAMILY: "ampere"})
    )
    assert facts is not None
    assert facts.cc == CC(8, 9)


def test_cuda_compute_labels_are_not_gfd_labels() -> None:
    node = _with_labels(**{GFD.COMPUTE_MAJOR: None, GFD.COMPUTE_MINOR: None})
    node["metadata"]["labels"]["nvidia.com/cuda.compute.major"] = "9"
    node["metadata"]["labels"]["nvidia.com/cuda.compute.minor"] = "0"
    assert facts_from_node(node) is None


MALFORMED_COMPUTE = [
    pytest.param({GFD.COMPUTE_MAJOR: None}, id="major-missing"),
    pytest.param({GFD.COMPUTE_MINOR: None}, id="minor-missing"),
    pytest.param({GFD.COMPUTE_MAJOR: None, GFD.COMPUTE_MINOR: None}, id="both-missing"),
    pytest.param({GFD.COMPUTE_MAJOR: "nine"}, id="major-word"),
    pytest.param({GFD.COMPUTE_MAJOR: ""}, id="major-empty"),
    pytest.param({GFD.COMPUTE_MINOR: ""}, id="minor-empty"),
    pytest.param({GFD.COMPUTE_MAJOR: "9.0"}, id="major-float"),
    pytest.param({GFD.COMPUTE_MAJOR: "-1"}, id="major-negative"),
    pytest.param({GFD.COMPUTE_MAJOR: " 9"}, id="major-space"),
    pytest.param({GFD.COMPUTE_MINOR: "0x0"}, id="minor-hex"),
    pytest.param({GFD.COMPUTE_MAJOR: "²"}, id="major-superscript-digit"),
    pytest.param({GFD.COMPUTE_MINOR: "٣"}, id="minor-arabic-indic-digit"),
]


@pytest.mark.parametrize("labels", MALFORMED_COMPUTE)
def test_malformed_compute_labels_give_none(labels: dict[str, Any]) -> None:
    assert facts_from_node(_with_labels(**labels)) is None


@pytest.mark.parametrize(
    "node",
    [
        pytest.param({}, id="empty"),
        pytest.param({"metadata": None}, id="metadata-null"),
        pytest.param({"metadata": {"name": "n"}}, id="no-labels"),
        pytest.param({"metadata": {"name": "n", "labels": None}}, id="labels-null"),
        pytest.param({"metadata": {"name": "cpu-0", "labels": {"kubernetes.io/os": "linux"}}}, id="cpu-node"),
    ],
)
def test_nodes_without_gfd_labels_give_none(node: dict[str, Any]) -> None:
    assert facts_from_node(node) is None


@pytest.mark.parametrize(
    ("labels", "status", "expected"),
    [
        pytest.param({GFD.COUNT: "eight"}, None, {"gpu_count": 8}, id="count-word-falls-back-to-allocatable"),
        pytest.param({GFD.COUNT: None}, None, {"gpu_count": 8}, id="count-missing"),
        pytest.param({GFD.MEMORY: "81559MiB"}, None, {"memory_mib": 0}, id="memory-with-unit"),
        pytest.param({GFD.PRODUCT: None}, None, {"product": "unknown"}, id="product-missing"),
        pytest.param(
            {}, {"allocatable": {GFD.RESOURCE: "lots"}}, {"allocatable": 0, "usable": False}, id="alloc-word"
        ),
        pytest.param(
            {},
            {"allocatable": None, "conditions": None},
            {"allocatable": 0, "ready": False},
            id="status-nulls",
        ),
        pytest.param({}, {}, {"allocatable": 0, "ready": False, "usable": False}, id="status-empty"),
        pytest.param(
            {},
            {"allocatable": {GFD.RESOURCE: "8"}, "conditions": [{"type": "Ready", "status": "Unknown"}]},
            {"ready": False, "usable": False},
            id="not-ready",
        ),
    ],
)
def test_malformed_other_labels_degrade_gracefully(
    labels: dict[str, Any], status: dict[str, Any] | None, expected: dict[str, Any]
) -> None:
    node = _with_labels(**labels)
    if status is not None:
        node["status"] = status
    facts = facts_from_node(node)
    assert facts is not None
    assert facts.cc == CC(9, 0)
    for attribute, value in expected.items():
        assert getattr(facts, attribute) == value, attribute


def test_cordoned_node_is_not_usable() -> None:
    node = _node(spec={"unschedulable": True})
    facts = facts_from_node(node)
    assert facts is not None
    assert not facts.schedulable
    assert not facts.usable
    assert facts.taints == ()


def test_facts_from_node_does_not_mutate_the_node() -> None:
    node = _node()
    before = copy.deepcopy(node)
    facts_from_node(node)
    assert node == before
