"""Rendering: names and hash, the build plan (argv of every step) and the PVC / ConfigMap / Job."""

from __future__ import annotations

import hashlib
import json
import shlex
from typing import Any

import pytest

from trtllm_operator.api import constants as c
from trtllm_operator.api.engine import TRTEngineSpec
from trtllm_operator.api.plan import BuildPlan, PlanStep
from trtllm_operator.gpu import ComputeCapability
from trtllm_operator.reconcile.placement import Placement
from trtllm_operator.render.job import owner_reference, render_engine_children, steps_script
from trtllm_operator.render.names import build_config_hash, claim_name, job_name, labels, plan_configmap_name
from trtllm_operator.render.plan import RenderConfig, render_plan, source_claims
from trtllm_operator.render.presets import build_flags

CFG = RenderConfig()
EX = "/app/tensorrt_llm/examples"
IMAGE = "nvcr.io/nvidia/tensorrt-llm/release:1.2.0"
H100 = Placement(ComputeCapability(9, 0), None, 4, 2, "test")
H100_PINNED = Placement(ComputeCapability(9, 0), "NVIDIA-H100-80GB-HBM3", 4, 2, "test")
OWNER = {
    "apiVersion": "trtllm.dev/v1alpha1",
    "kind": "TRTEngine",
    "metadata": {"name": "llama", "namespace": "ml", "uid": "1234-abcd"},
}


def make_spec(**overrides: Any) -> TRTEngineSpec:
    base: dict[str, Any] = {
        "model": {"source": "hf://meta-llama/Llama-3.3-70B-Instruct", "architecture": "LlamaForCausalLM"},
        "image": IMAGE,
        "precision": "fp8",
        "kvCacheDtype": "fp8",
        "parallelism": {"tensor": 4},
        "storage": {"existingClaim": "shared-engines"},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return TRTEngineSpec.model_validate(base)


def plan_of(spec: TRTEngineSpec, placement: Placement = H100, name: str = "llama") -> BuildPlan:
    return render_plan("ml", name, spec, 3, build_config_hash(spec), placement, CFG)


def step(plan: BuildPlan, name: str) -> PlanStep:
    matches = [s for s in plan.steps if s.name == name]
    assert len(matches) == 1, [s.name for s in plan.steps]
    return matches[0]


def children(
    spec: TRTEngineSpec, placement: Placement = H100, owner: dict[str, Any] | None = OWNER
) -> list[dict[str, Any]]:
    return render_engine_children(owner, "ml", "llama", spec, plan_of(spec, placement), placement, CFG)


def job_of(
    spec: TRTEngineSpec, placement: Placement = H100, owner: dict[str, Any] | None = OWNER
) -> dict[str, Any]:
    job = children(spec, placement, owner)[-1]
    assert job["kind"] == "Job"
    return job


def builder(job: dict[str, Any]) -> dict[str, Any]:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "builder"
    return container


# ---------------------------------------------------------------------------------------------- names


class TestNames:
    def test_hash_is_8_hex_and_stable(self) -> None:
        h = build_config_hash(make_spec())
        assert len(h) == 8
        int(h, 16)
        assert build_config_hash(make_spec()) == h

    def test_spelled_out_defaults_do_not_change_the_hash(self) -> None:
        explicit = make_spec(
            backend="tensorrt",
            calibration={"dataset": "cnn_dailymail", "size": 512},
            build={"preset": "throughput"},
        )
        assert build_config_hash(explicit) == build_config_hash(make_spec())

    @pytest.mark.parametrize(
        "change",
        [
            {"deletionPolicy": "Delete"},
            {"resources": {"requests": {"cpu": 8}}},
            {"nodeSelector": {"pool": "gpu"}},
            {"tolerations": [{"key": "dedicated", "operator": "Exists"}]},
            {"priorityClassName": "high"},
            {"activeDeadlineSeconds": 600},
            {"backoffLimit": 5},
            {"storage": {"existingClaim": "other"}},
            {"model": {"tokenSecretRef": {"name": "hf"}}},
        ],
    )
    def test_pod_and_lifecycle_fields_do_not_change_the_hash(self, change: dict[str, Any]) -> None:
        assert build_config_hash(make_spec(**change)) == build_config_hash(make_spec())

    @pytest.mark.parametrize(
        "change",
        [
            {"precision": "int4_awq"},
            {"kvCacheDtype": "auto"},
            {"image": "nvcr.io/nvidia/tensorrt-llm/release:1.1.0"},
            {"backend": "pytorch"},
            {"model": {"revision": "abc123"}},
            {"calibration": {"size": 256}},
            {"parallelism": {"tensor": 8}},
            {"target": {"computeCapability": "9.0"}},
            {"build": {"extraArgs": ["--strip_plan"]}},
            {"validation": {"benchmark": {"concurrency": 8}}},
        ],
    )
    def test_engine_fields_change_the_hash(self, change: dict[str, Any]) -> None:
        assert build_config_hash(make_spec(**change)) != build_config_hash(make_spec())

    def test_names(self) -> None:
        assert job_name("llama", "0123abcd") == "llama-build-0123abcd"
        assert plan_configmap_name("llama", "0123abcd") == "llama-plan-0123abcd"
        assert claim_name("llama") == "llama-engines"

    def test_names_fit_a_dns_label_for_the_longest_engine_name(self) -> None:
        engine = "e" * c.ENGINE_NAME_MAX
        h = build_config_hash(make_spec())
        for name in (job_name(engine, h), plan_configmap_name(engine, h), claim_name(engine)):
            assert len(name) <= 63, name

    def test_labels(self) -> None:
        assert labels("llama", 3, "0123abcd") == {
            "app.kubernetes.io/managed-by": "trtllm-operator",
            "app.kubernetes.io/name": "trtllm-engine",
            "trtllm.dev/component": "build",
            "trtllm.dev/engine": "llama",
            "trtllm.dev/revision": "3",
            "trtllm.dev/build-config-hash": "0123abcd",
        }


# ----------------------------------------------------------------------------------------------- plan


class TestPlanPaths:
    def test_paths_and_uri_with_existing_claim(self) -> None:
        spec = make_spec(storage={"existingClaim": "shared-engines", "path": "prod/engines"})
        plan = plan_of(spec)
        h = build_config_hash(spec)
        root = "/engines/prod/engines/llama"
        assert plan.paths.model_dump() == {
            "root": root,
            "engine": f"{root}/{h}",
            "staging": f"{root}/.{h}.partial",
            "checkpoint": f"{root}/.{h}.checkpoint",
            "uri": f"pvc://shared-engines/prod/engines/llama/{h}",
        }

    def test_uri_names_the_operator_claim(self) -> None:
        plan = plan_of(make_spec(storage={"existingClaim": None, "claim": {"size": "500Gi"}}))
        assert plan.paths.uri.startswith("pvc://llama-engines/engines/llama/")

    def test_plan_header_fields(self) -> None:
        spec = make_spec(model={"parametersBillions": 70}, build={"acceptInflightBatchingDisabled": True})
        plan = plan_of(spec, H100_PINNED)
        assert (plan.namespace, plan.engine_name, plan.revision) == ("ml", "llama", 3)
        assert plan.build_config_hash == build_config_hash(spec)
        assert (plan.target_cc, plan.target_product) == ("9.0", "NVIDIA-H100-80GB-HBM3")
        assert (plan.tensor, plan.pipeline, plan.precision, plan.kv_cache_dtype) == (4, 1, "fp8", "fp8")
        assert plan.image == IMAGE
        assert plan.model_params_billions == 70
        assert plan.accept_inflight_batching_disabled is True
        assert BuildPlan.model_validate_json(plan.to_json()) == plan


class TestModelSources:
    def test_hf_download_without_token_in_argv(self) -> None:
        spec = make_spec(
            model={"revision": "0123456789abcdef", "tokenSecretRef": {"name": "hf-secret", "key": "tok"}}
        )
        plan = plan_of(spec)
        local = "/engines/engines/llama/.model"
        assert plan.steps[0] == PlanStep(
            name="download",
            argv=[
                "huggingface-cli",
                "download",
                "meta-llama/Llama-3.3-70B-Instruct",
                "--revision",
                "0123456789abcdef",
                "--local-dir",
                local,
            ],
        )
        assert plan.model.local_dir == local
        assert plan.model.token_env == "HF_TOKEN"
        assert not any("hf-secret" in arg or arg == "tok" for s in plan.steps for arg in s.argv)

    def test_hf_without_revision_or_token(self) -> None:
        plan = plan_of(make_spec())
        assert "--revision" not in plan.steps[0].argv
        assert plan.model.token_env is None

    def test_s3_download(self) -> None:
        plan = plan_of(make_spec(model={"source": "s3://models-bucket/llama/70b"}))
        assert plan.steps[0].argv == [
            "aws", "s3", "cp", "--recursive", "s3://models-bucket/llama/70b", "/engines/engines/llama/.model"
        ]  # fmt: skip

    def test_pvc_model_is_mounted_not_downloaded(self) -> None:
        plan = plan_of(make_spec(model={"source": "pvc://models/llama-3.3-70b"}))
        assert plan.model.local_dir == "/models/models/llama-3.3-70b"
        assert [s.name for s in plan.steps][:2] == ["quantize", "build"]
        assert "/models/models/llama-3.3-70b" in step(plan, "quantize").argv

    def test_pvc_model_at_claim_root(self) -> None:
        assert plan_of(make_spec(model={"source": "pvc://models"})).model.local_dir == "/models/models"


class TestTensorrtSteps:
    def test_step_order_without_gates(self) -> None:
        assert [s.name for s in plan_of(make_spec()).steps] == ["download", "quantize", "build", "verify"]

    def test_quantize_argv(self) -> None:
        spec = make_spec(calibration={"size": 256, "maxSeqLength": 1024, "seed": 7})
        plan = plan_of(spec)
        assert step(plan, "quantize").argv == [
            "python3", f"{EX}/quantization/quantize.py",
            "--model_dir", "/engines/engines/llama/.model",
            "--output_dir", plan.paths.checkpoint,
            "--qformat", "fp8",
            "--kv_cache_dtype", "fp8",
            "--calib_dataset", "cnn_dailymail",
            "--calib_size", "256",
            "--calib_max_seq_length", "1024",
            "--tp_size", "4",
            "--pp_size", "1",
            "--seed", "7",
            "--dtype", "auto",
        ]  # fmt: skip
        assert plan.calibration is not None
        assert (plan.calibration.dataset, plan.calibration.size, plan.calibration.local_dir) == (
            "cnn_dailymail",
            256,
            None,
        )

    def test_kv_auto_passes_no_kv_flag(self) -> None:
        argv = step(plan_of(make_spec(precision="int4_awq", kvCacheDtype="auto")), "quantize").argv
        assert "--kv_cache_dtype" not in argv
        assert argv[argv.index("--qformat") + 1] == "int4_awq"

    def test_pvc_calibration_is_passed_as_local_dir(self) -> None:
        plan = plan_of(make_spec(calibration={"dataset": "pvc://datasets/calib/code"}))
        argv = step(plan, "quantize").argv
        assert argv[argv.index("--calib_dataset") + 1] == "/models/datasets/calib/code"
        assert plan.calibration is not None
        assert plan.calibration.local_dir == "/models/datasets/calib/code"

    @pytest.mark.parametrize(
        ("architecture", "family"),
        [
            ("LlamaForCausalLM", "llama"),
            ("MistralForCausalLM", "llama"),
            ("Qwen2ForCausalLM", "qwen"),
            ("MixtralForCausalLM", "llama"),  # no mixtral script: its README runs llama's
            ("Phi3ForCausalLM", "phi"),
        ],
    )
    def test_bf16_converts_with_the_family_script(self, architecture: str, family: str) -> None:
        plan = plan_of(make_spec(precision="bf16", kvCacheDtype="auto", model={"architecture": architecture}))
        assert step(plan, "convert").argv == [
            "python3", f"{EX}/models/core/{family}/convert_checkpoint.py",
            "--model_dir", "/engines/engines/llama/.model",
            "--output_dir", plan.paths.checkpoint,
            "--dtype", "bfloat16",
            "--tp_size", "4",
            "--pp_size", "1",
        ]  # fmt: skip
        assert plan.calibration is None

    def test_gemma_converts_with_its_own_spellings(self) -> None:
        """gemma's parser has --ckpt-type and --world-size (TP), no --tp_size/--pp_size."""
        spec = make_spec(precision="bf16", kvCacheDtype="auto", model={"architecture": "Gemma2ForCausalLM"})
        plan = plan_of(spec)
        assert step(plan, "convert").argv == [
            "python3", f"{EX}/models/core/gemma/convert_checkpoint.py",
            "--model_dir", "/engines/engines/llama/.model",
            "--output_dir", plan.paths.checkpoint,
            "--dtype", "bfloat16",
            "--ckpt-type", "hf",
            "--world-size", "4",
        ]  # fmt: skip
        assert not any("pipeline" in n for n in plan.notes)

    def test_unknown_architecture_converts_as_llama_with_a_note(self) -> None:
        plan = plan_of(
            make_spec(precision="fp16", kvCacheDtype="fp16", model={"architecture": "FalconForCausalLM"})
        )
        assert step(plan, "convert").argv[1] == f"{EX}/models/core/llama/convert_checkpoint.py"
        assert "--dtype" in step(plan, "convert").argv
        assert any("FalconForCausalLM" in n and "llama" in n for n in plan.notes)

    def test_fp16_with_fp8_kv_quantizes_full_precision(self) -> None:
        argv = step(plan_of(make_spec(precision="fp16", kvCacheDtype="fp8")), "quantize").argv
        assert argv[argv.index("--qformat") + 1] == "full_prec"
        assert argv[argv.index("--kv_cache_dtype") + 1] == "fp8"
        assert argv[argv.index("--dtype") + 1] == "float16"

    def test_build_argv_carries_the_preset_flags(self) -> None:
        spec = make_spec(build={"maxBatchSize": 512, "maxNumTokens": 16384})
        plan = plan_of(spec)
        assert step(plan, "build").argv == [
            "trtllm-build",
            "--checkpoint_dir", plan.paths.checkpoint,
            "--output_dir", plan.paths.staging,
            "--workers", "4",
            "--gemm_plugin", "disable",
            "--reduce_fusion", "enable",
            "--user_buffer", "enable",
            "--gemm_swiglu_plugin", "fp8",
            "--max_batch_size", "512",
            "--max_num_tokens", "16384",
        ]  # fmt: skip
        assert plan.build_flags == build_flags(spec, H100.cc, "LlamaForCausalLM").flags

    def test_workers_override(self) -> None:
        argv = step(plan_of(make_spec(build={"extraArgs": ["--workers", "1"]})), "build").argv
        assert argv.count("--workers") == 1
        assert argv[argv.index("--workers") + 1] == "1"

    def test_preset_notes_reach_the_plan(self) -> None:
        plan = plan_of(make_spec(model={"architecture": None}))
        assert any("--reduce_fusion" in n for n in plan.notes)

    def test_awq_calibration_cap_is_noted(self) -> None:
        plan = plan_of(make_spec(precision="int4_awq", kvCacheDtype="auto"))
        assert "quantize uses at most 32 calibration samples for AWQ formats, not 512" in plan.notes


VALIDATION = {
    "benchmark": {"inputLength": 1024, "outputLength": 256, "concurrency": 32, "numRequests": 200},
    "accuracy": {
        "tasks": [
            {"name": "mmlu", "baseline": {"value": 0.8}, "maxDrop": 0.01, "numSamples": 500},
            {"name": "gsm8k", "dataset": "pvc://evals/gsm8k", "baseline": {"value": 0.9}, "maxDrop": 0.02},
            {"name": "perplexity", "dataset": "pvc://evals/wiki", "baseline": {"value": 5.0}, "maxDrop": 0.2},
        ]
    },
}


class TestGates:
    def test_step_order(self) -> None:
        plan = plan_of(make_spec(validation=VALIDATION))
        assert [s.name for s in plan.steps] == [
            "download", "quantize", "build", "verify", "dataset", "benchmark",
            "accuracy", "accuracy", "accuracy",
        ]  # fmt: skip
        assert plan.benchmark is not None
        assert plan.benchmark.concurrency == 32
        assert plan.accuracy is not None
        assert [t.name for t in plan.accuracy.tasks] == ["mmlu", "gsm8k", "perplexity"]

    def test_benchmark_dataset_and_run(self) -> None:
        plan = plan_of(make_spec(validation=VALIDATION))
        h, root = plan.build_config_hash, plan.paths.root
        dataset = step(plan, "dataset")
        assert dataset.argv == [
            "python3", "/app/tensorrt_llm/benchmarks/cpp/prepare_dataset.py",
            "--stdout", "--tokenizer", "/engines/engines/llama/.model",
            "token-norm-dist",
            "--input-mean", "1024", "--output-mean", "256",
            "--input-stdev", "0", "--output-stdev", "0",
            "--num-requests", "200",
        ]  # fmt: skip
        assert dataset.stdout == f"{root}/.{h}.bench-dataset.jsonl"
        assert step(plan, "benchmark").argv == [
            "trtllm-bench", "--model", "meta-llama/Llama-3.3-70B-Instruct",
            "--model_path", "/engines/engines/llama/.model",
            "throughput", "--engine_dir", plan.paths.staging, "--backend", "tensorrt",
            "--dataset", f"{root}/.{h}.bench-dataset.jsonl",
            "--concurrency", "32", "--num_requests", "200",
            "--report_json", f"{root}/.{h}.bench.json",
            "--streaming",
        ]  # fmt: skip
        assert any("prepare_dataset.py" in n and "UNVERIFIED" in n for n in plan.notes)

    def test_benchmark_model_name_for_pvc_model_is_a_name_and_files_go_in_model_path(self) -> None:
        """trtllm-bench refuses a path as --model ("please provide a model name")."""
        plan = plan_of(make_spec(model={"source": "pvc://models/llama"}, validation=VALIDATION))
        argv = step(plan, "benchmark").argv
        assert argv[argv.index("--model") + 1] == "llama"
        assert argv[argv.index("--model_path") + 1] == "/models/models/llama"

    def test_accuracy_argv(self) -> None:
        plan = plan_of(make_spec(validation=VALIDATION))
        mmlu, gsm8k, ppl = (s.argv for s in plan.steps if s.name == "accuracy")
        staging, tokenizer = plan.paths.staging, "/engines/engines/llama/.model"
        assert mmlu == [
            "trtllm-eval", "--model", staging, "--backend", "tensorrt", "--tokenizer", tokenizer, "mmlu",
            "--num_samples", "500",
        ]  # fmt: skip
        assert gsm8k == [
            "trtllm-eval", "--model", staging, "--backend", "tensorrt", "--tokenizer", tokenizer, "gsm8k",
            "--dataset_path", "/models/evals/gsm8k",
        ]  # fmt: skip
        assert ppl == [
            "trtllm-operator-eval", "--model", staging, "--backend", "tensorrt",
            "--task", "perplexity", "--dataset", "/models/evals/wiki",
            "--tokenizer", tokenizer,  # an engine directory carries no tokenizer
        ]  # fmt: skip

    def test_no_gate_steps_without_validation(self) -> None:
        names = {s.name for s in plan_of(make_spec()).steps}
        assert not names & {"dataset", "benchmark", "accuracy"}


class TestPytorchSteps:
    def test_ptq_then_verify_then_gates(self) -> None:
        spec = make_spec(
            backend="pytorch", validation=VALIDATION, calibration={"dataset": "pileval", "seed": 9}
        )
        plan = plan_of(spec)
        assert [s.name for s in plan.steps] == [
            "download", "quantize", "export", "verify",
            "dataset", "benchmark", "accuracy", "accuracy", "accuracy",
        ]  # fmt: skip
        assert step(plan, "export").argv == []  # in-process: links the verified checkpoint into staging
        assert step(plan, "quantize").argv == [
            "trtllm-operator-ptq",
            "--model_dir", "/engines/engines/llama/.model",
            "--output_dir", plan.paths.checkpoint,  # reused by a retry once verified
            "--qformat", "fp8",
            "--kv_cache_dtype", "fp8",
            "--calib_dataset", "pileval",
            "--calib_size", "512",
            "--calib_max_seq_length", "512",
            "--seed", "9",
        ]  # fmt: skip
        assert plan.build_flags == {}
        bench = step(plan, "benchmark").argv
        assert bench[bench.index("--model_path") + 1] == plan.paths.staging
        assert bench[bench.index("--backend") + 1] == "pytorch"
        assert "--engine_dir" not in bench
        for argv in (s.argv for s in plan.steps if s.name == "accuracy"):
            assert argv[argv.index("--model") + 1] == plan.paths.staging
            assert argv[argv.index("--backend") + 1] == "pytorch"

    def test_unquantized_pytorch_is_exported_as_is(self) -> None:
        plan = plan_of(make_spec(backend="pytorch", precision="bf16", kvCacheDtype="auto"))
        assert [s.name for s in plan.steps] == ["download", "export", "verify"]
        assert step(plan, "export").argv == [
            "cp",
            "-a",
            "/engines/engines/llama/.model/.",
            plan.paths.staging,
        ]


def test_source_claims_are_deduplicated_and_sorted() -> None:
    spec = make_spec(
        model={"source": "pvc://models/llama"},
        calibration={"dataset": "pvc://models/calib"},
        validation={
            "accuracy": {
                "tasks": [
                    {"name": "perplexity", "dataset": "pvc://evals/w", "baseline": {"value": 1}, "maxDrop": 1}
                ]
            }
        },
    )
    assert source_claims(plan_of(spec)) == ["evals", "models"]
    # fp16 is not calibrated: its calibration dataset is not mounted.
    unquantized = make_spec(precision="bf16", kvCacheDtype="auto", calibration={"dataset": "pvc://calib/x"})
    assert source_claims(plan_of(unquantized)) == []


# ------------------------------------------------------------------------------------------- children


class TestChildren:
    def test_order_and_kinds(self) -> None:
        with_claim = make_spec(storage={"existingClaim": None, "claim": {"size": "500Gi"}})
        assert [o["kind"] for o in children(with_claim)] == ["PersistentVolumeClaim", "ConfigMap", "Job"]
        assert [o["kind"] for o in children(make_spec())] == ["ConfigMap", "Job"]

    def test_claim_retained_by_default(self) -> None:
        spec = make_spec(
            storage={"existingClaim": None, "claim": {"size": "500Gi", "storageClassName": "fast"}}
        )
        pvc = children(spec)[0]
        assert pvc["metadata"]["name"] == "llama-engines"
        assert "ownerReferences" not in pvc["metadata"]
        assert pvc["metadata"]["labels"]["trtllm.dev/engine"] == "llama"
        assert pvc["spec"] == {
            "accessModes": ["ReadWriteMany"],
            "resources": {"requests": {"storage": "500Gi"}},
            "storageClassName": "fast",
        }

    def test_claim_owned_with_delete_policy(self) -> None:
        spec = make_spec(deletionPolicy="Delete", storage={"existingClaim": None, "claim": {"size": "1Ti"}})
        assert children(spec)[0]["metadata"]["ownerReferences"] == [owner_reference(OWNER)]

    def test_configmap(self) -> None:
        spec = make_spec(validation=VALIDATION)
        plan = plan_of(spec)
        cm = children(spec)[0]
        assert cm["metadata"]["name"] == f"llama-plan-{plan.build_config_hash}"
        assert cm["metadata"]["labels"] == labels("llama", 3, plan.build_config_hash)
        assert cm["metadata"]["ownerReferences"] == [owner_reference(OWNER)]
        assert BuildPlan.model_validate_json(cm["data"]["plan.json"]) == plan
        script = cm["data"]["steps.sh"]
        assert script.startswith("# Build plan of TRTEngine ml/llama, revision 3")
        for s in plan.steps:
            if s.argv:
                assert shlex.join(s.argv) in script
        assert f"> {step(plan, 'dataset').stdout}" in script

    def test_steps_script_quotes_arguments(self) -> None:
        plan = plan_of(make_spec(build={"extraArgs": ["--visualize_network", "info; rm -rf /"]}))
        assert "--visualize_network 'info; rm -rf /'" in steps_script(plan)

    def test_owner_reference(self) -> None:
        assert owner_reference(OWNER) == {
            "apiVersion": "trtllm.dev/v1alpha1",
            "kind": "TRTEngine",
            "name": "llama",
            "uid": "1234-abcd",
            "controller": True,
            "blockOwnerDeletion": True,
        }


class TestJob:
    def test_metadata(self) -> None:
        spec = make_spec()
        job = job_of(spec)
        h = build_config_hash(spec)
        assert job["apiVersion"] == "batch/v1"
        assert job["metadata"]["name"] == f"llama-build-{h}"
        assert job["metadata"]["namespace"] == "ml"
        assert job["metadata"]["labels"] == labels("llama", 3, h)
        assert job["metadata"]["ownerReferences"] == [owner_reference(OWNER)]
        assert job["spec"]["template"]["metadata"]["labels"] == labels("llama", 3, h)

    def test_no_owner_offline(self) -> None:
        assert all("ownerReferences" not in o["metadata"] for o in children(make_spec(), owner=None))

    def test_plan_annotation(self) -> None:
        spec = make_spec()
        expected = hashlib.sha256(plan_of(spec).to_json().encode()).hexdigest()
        assert job_of(spec)["spec"]["template"]["metadata"]["annotations"] == {
            "trtllm.dev/plan-sha256": expected
        }

    def test_node_affinity_on_gfd_labels(self) -> None:
        terms = job_of(make_spec())["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ]["nodeSelectorTerms"]
        assert terms == [
            {
                "matchExpressions": [
                    {"key": "nvidia.com/gpu.compute.major", "operator": "In", "values": ["9"]},
                    {"key": "nvidia.com/gpu.compute.minor", "operator": "In", "values": ["0"]},
                ]
            }
        ]

    def test_pinned_product_adds_product_affinity(self) -> None:
        terms = job_of(make_spec(), H100_PINNED)["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ]["nodeSelectorTerms"]
        assert {
            "key": "nvidia.com/gpu.product",
            "operator": "In",
            "values": ["NVIDIA-H100-80GB-HBM3"],
        } in terms[0]["matchExpressions"]

    def test_gpu_request_and_resources(self) -> None:
        spec = make_spec(
            parallelism={"tensor": 2, "pipeline": 2},
            resources={"requests": {"cpu": 16, "memory": "256Gi"}, "limits": {"memory": "300Gi"}},
        )
        placement = Placement(ComputeCapability(9, 0), None, 4, 1, "test")
        assert builder(job_of(spec, placement))["resources"] == {
            "requests": {"cpu": 16, "memory": "256Gi", "nvidia.com/gpu": 4},
            "limits": {"memory": "300Gi", "nvidia.com/gpu": 4},
        }

    def test_tolerations_node_selector_priority(self) -> None:
        spec = make_spec(
            tolerations=[{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
            nodeSelector={"pool": "builders"},
            priorityClassName="batch-high",
        )
        pod = job_of(spec)["spec"]["template"]["spec"]
        assert pod["tolerations"] == [
            {"key": "nvidia.com/gpu", "operator": "Exists"},
            {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"},
        ]
        assert pod["nodeSelector"] == {"pool": "builders"}
        assert pod["priorityClassName"] == "batch-high"

    def test_defaults_leave_optional_pod_fields_out(self) -> None:
        pod = job_of(make_spec())["spec"]["template"]["spec"]
        assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists"}]
        assert "nodeSelector" not in pod
        assert "priorityClassName" not in pod

    def test_failure_policy_deadline_backoff(self) -> None:
        job = job_of(make_spec(activeDeadlineSeconds=7200, backoffLimit=4))
        assert job["spec"]["activeDeadlineSeconds"] == 7200
        assert job["spec"]["backoffLimit"] == 4
        assert job["spec"]["podFailurePolicy"] == {
            "rules": [
                {
                    "action": "FailJob",
                    "onExitCodes": {
                        "containerName": "builder",
                        "operator": "In",
                        "values": [10, 11, 12, 13, 14],
                    },
                },
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            ]
        }

    def test_pod_hardening(self) -> None:
        pod = job_of(make_spec())["spec"]["template"]["spec"]
        assert pod["restartPolicy"] == "Never"
        assert pod["automountServiceAccountToken"] is False
        assert pod["enableServiceLinks"] is False
        container = builder(job_of(make_spec()))
        assert container["terminationMessagePath"] == "/dev/termination-log"
        assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"

    def test_containers(self) -> None:
        pod = job_of(make_spec())["spec"]["template"]["spec"]
        (install,) = pod["initContainers"]
        assert install == {
            "name": "install-builder",
            "image": "ghcr.io/trtllm-operator/trtllm-operator:0.1.0",
            "command": ["cp", "-a", "/app/site/.", "/opt/trtllm-operator/"],
            "volumeMounts": [{"name": "builder", "mountPath": "/opt/trtllm-operator"}],
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        }
        container = builder(job_of(make_spec()))
        assert container["image"] == IMAGE
        assert container["command"] == [
            "python3",
            "-m",
            "trtllm_operator.builder",
            "--plan",
            "/etc/trtllm/plan/plan.json",
        ]
        assert {"name": "PYTHONPATH", "value": "/opt/trtllm-operator"} in container["env"]

    def test_custom_builder_image(self) -> None:
        spec = make_spec()
        cfg = RenderConfig(builder_image="registry.local/trtllm-operator:dev")
        job = render_engine_children(None, "ml", "llama", spec, plan_of(spec), H100, cfg)[-1]
        assert (
            job["spec"]["template"]["spec"]["initContainers"][0]["image"]
            == "registry.local/trtllm-operator:dev"
        )

    def test_hf_token_only_through_secret_key_ref(self) -> None:
        spec = make_spec(model={"tokenSecretRef": {"name": "hf-secret", "key": "token"}})
        job = job_of(spec)
        env = builder(job)["env"]
        assert {
            "name": "HF_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "hf-secret", "key": "token"}},
        } in env
        assert all("value" not in e for e in env if e["name"] == "HF_TOKEN")
        assert "hf-secret" not in json.dumps(job["spec"]["template"]["spec"]["containers"][0]["command"])

    def test_no_token_env_without_secret(self) -> None:
        assert [e["name"] for e in builder(job_of(make_spec()))["env"]] == ["PYTHONPATH", "HOME"]

    def test_volumes_and_mounts(self) -> None:
        spec = make_spec(
            model={"source": "pvc://models/llama"}, calibration={"dataset": "pvc://datasets/calib"}
        )
        job = job_of(spec)
        pod = job["spec"]["template"]["spec"]
        h = build_config_hash(spec)
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["engines"] == {
            "name": "engines",
            "persistentVolumeClaim": {"claimName": "shared-engines"},
        }
        assert volumes["plan"] == {"name": "plan", "configMap": {"name": f"llama-plan-{h}"}}
        assert volumes["dshm"] == {"name": "dshm", "emptyDir": {"medium": "Memory"}}
        assert volumes["builder"] == {"name": "builder", "emptyDir": {}}
        sources = sorted(
            v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if v["name"].startswith("source-")
        )
        assert sources == ["datasets", "models"]
        assert all(
            v["persistentVolumeClaim"]["readOnly"] for v in pod["volumes"] if v["name"].startswith("source-")
        )
        mounts = {m["mountPath"]: m for m in builder(job)["volumeMounts"]}
        assert mounts["/engines"]["name"] == "engines"
        assert not mounts["/engines"].get("readOnly", False)
        assert mounts["/etc/trtllm/plan"]["readOnly"] is True
        assert mounts["/dev/shm"]["name"] == "dshm"
        assert mounts["/models/models"]["readOnly"] is True
        assert mounts["/models/datasets"]["readOnly"] is True
        assert len({m["name"] for m in builder(job)["volumeMounts"]}) == len(builder(job)["volumeMounts"])

    def test_engine_claim_used_as_model_source_is_also_mounted_read_only(self) -> None:
        spec = make_spec(model={"source": "pvc://shared-engines/hf/llama"})
        pod = job_of(spec)["spec"]["template"]["spec"]
        assert [v for v in pod["volumes"] if "persistentVolumeClaim" in v] == [
            {"name": "engines", "persistentVolumeClaim": {"claimName": "shared-engines"}}
        ]
        mounts = builder(job_of(spec))["volumeMounts"]
        assert {"name": "engines", "mountPath": "/models/shared-engines", "readOnly": True} in mounts
        assert {"name": "engines", "mountPath": "/engines"} in mounts

    def test_operator_claim_is_mounted(self) -> None:
        spec = make_spec(storage={"existingClaim": None, "claim": {"size": "1Ti"}})
        volumes = job_of(spec)["spec"]["template"]["spec"]["volumes"]
        assert {"name": "engines", "persistentVolumeClaim": {"claimName": "llama-engines"}} in volumes

    def test_job_name_fits_for_the_longest_engine(self) -> None:
        spec = make_spec()
        name = "x" * c.ENGINE_NAME_MAX
        objs = render_engine_children(None, "ml", name, spec, plan_of(spec, name=name), H100, CFG)
        assert all(len(o["metadata"]["name"]) <= 63 for o in objs)
