"""The builder's GPU code on a real NVIDIA GPU: NVML preflight, ModelOpt PTQ -> export -> verify -> eval.

Marked ``gpu``: the project's pytest configuration deselects them (``-m 'not gpu'``); the GPU
validation script runs them with ``pytest tests/gpu -m gpu --noconftest`` on a machine that has a
GPU, torch, transformers and NVIDIA ModelOpt. Module-level imports are the operator's only, so that
collection works anywhere; torch & co. are imported inside the tests.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest

from trtllm_operator.api.constants import EXIT_INCOMPATIBLE_GPU
from trtllm_operator.api.engine import TRTEngineSpec
from trtllm_operator.api.plan import BuildPlan
from trtllm_operator.builder import evaluate, ptq
from trtllm_operator.builder.preflight import GpuFacts, Inventory, check, probe
from trtllm_operator.builder.remap import remap_plan
from trtllm_operator.builder.verify import EXPECTED_QUANT_ALGO_PYTORCH, verify_dir
from trtllm_operator.gpu import ComputeCapability
from trtllm_operator.render.plan import RenderConfig, render_plan

pytestmark = [pytest.mark.gpu, pytest.mark.filterwarnings("default")]

TINY = {
    "vocab_size": 260,
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 256,
}


class _Target:
    def __init__(self, gpu: GpuFacts) -> None:
        self.cc = gpu.cc
        self.product: str | None = gpu.name.replace(" ", "-")
        self.gpus = 1


def _spec(precision: str) -> TRTEngineSpec:
    return TRTEngineSpec.model_validate(
        {
            "model": {"source": "pvc://models/tiny", "domain": "code", "parametersBillions": 0.001},
            "backend": "pytorch",
            "image": "local",
            "precision": precision,
            "calibration": {"dataset": "pvc://data/calib", "size": 16, "maxSeqLength": 64, "seed": 7},
            "storage": {"existingClaim": "engines"},
            "validation": {
                "accuracy": {
                    "tasks": [
                        {
                            "name": "perplexity",
                            "dataset": "pvc://data/eval",
                            "baseline": {"value": 1.0},
                            "maxDrop": 0.1,
                        }
                    ]
                }
            },
        }
    )


def _plan(precision: str, gpu: GpuFacts, root: Path | None = None) -> BuildPlan:
    plan = render_plan("gpu", "tiny", _spec(precision), 1, f"h-{precision}", _Target(gpu), RenderConfig())
    if root is None:
        return plan
    return remap_plan(plan, [("/models", str(root / "pvc")), ("/engines", str(root / "engines"))])


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    found = probe()
    if found.error is not None or not found.gpus:
        pytest.fail(f"NVML sees no GPU on a machine that runs the gpu tests: {found.error}")
    return found


def test_nvml_reports_the_gpu(inventory: Inventory) -> None:
    gpu = inventory.gpus[0]
    assert gpu.name.startswith("NVIDIA")
    assert gpu.cc >= ComputeCapability(7, 0)
    assert 0 < gpu.memory_free <= gpu.memory_total
    assert inventory.driver_version
    assert inventory.driver_version[0].isdigit()
    assert inventory.cuda_driver_version
    assert inventory.cuda_driver_version >= 11000
    print(json.dumps(inventory.to_json()))


def test_preflight_accepts_fp8_and_refuses_nvfp4_on_hopper(inventory: Inventory) -> None:
    gpu = inventory.gpus[0]
    if gpu.cc != ComputeCapability(9, 0):
        pytest.skip(f"the fp8-yes/nvfp4-no pair is Hopper's; this GPU is {gpu.describe()}")
    accepted = check(_plan("fp8", gpu), inventory)
    assert accepted.failure is None, accepted.failure
    refused = check(_plan("nvfp4", gpu), inventory).failure
    assert refused is not None
    assert refused.exit_code == EXIT_INCOMPATIBLE_GPU
    assert refused.reason == "IncompatibleGPU"
    assert "nvfp4" in refused.message
    assert gpu.name in refused.message


# --- ModelOpt on a tiny model ----------------------------------------------------------------------


def _byte_tokenizer() -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    chars = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b], extra = chr(256 + extra), extra + 1
    tok = Tokenizer(models.BPE(vocab={c: b for b, c in chars.items()}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<s>", "</s>", "<pad>", "<unk>"])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )


TEXTS = [f"def f_{i}(x):\n    return x * {i} + {i % 7}  # the quick brown fox {i}\n" for i in range(96)]


@pytest.fixture(scope="module")
def tiny_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight bf16 Llama with a byte tokenizer, calibration and evaluation texts, as on PVCs."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("tiny")
    model_dir = root / "pvc" / "models" / "tiny"
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**TINY, bos_token_id=256, eos_token_id=257, pad_token_id=258))
    model.to(torch.bfloat16).save_pretrained(str(model_dir))
    _byte_tokenizer().save_pretrained(str(model_dir))
    config = json.loads((model_dir / "config.json").read_text())
    for key in [k for k in ("torch_dtype", "dtype") if k in config] or ["dtype"]:
        config[key] = "bfloat16"
    (model_dir / "config.json").write_text(json.dumps(config))
    for name, texts in (("calib", TEXTS[:64]), ("eval", TEXTS[64:])):
        (root / "pvc" / "data" / name).mkdir(parents=True)
        lines = "\n".join(json.dumps({"text": t}) for t in texts)
        (root / "pvc" / "data" / name / "part.jsonl").write_text(lines + "\n")
    return root


def _eval(model_dir: Path, dataset: Path) -> dict[str, Any]:
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = evaluate.main(["--model", str(model_dir), "--dataset", str(dataset), "--max_length", "128"])
    assert code == 0
    line: dict[str, Any] = json.loads(stdout.getvalue().strip().splitlines()[-1])
    return line


@pytest.mark.parametrize("precision", ["fp8", "int8_sq", "int4_awq"])
def test_modelopt_quantize_export_verify_and_evaluate(
    precision: str, tiny_tree: Path, inventory: Inventory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plan's own quantize argv (rendered, remapped) through trtllm-operator-ptq's main, then the
    builder's verification of the export and the evaluator on it (fake-quant restore)."""
    monkeypatch.setenv(ptq.SAVE_STATE_ENV, "1")
    plan = _plan(precision, inventory.gpus[0], tiny_tree)
    quantize = next(step for step in plan.steps if step.name == "quantize")
    assert quantize.argv[0] == "trtllm-operator-ptq"
    assert ptq.main(quantize.argv[1:]) == 0

    checkpoint = Path(plan.paths.checkpoint)
    hf_quant = json.loads((checkpoint / "hf_quant_config.json").read_text())
    assert hf_quant["quantization"]["quant_algo"] == EXPECTED_QUANT_ALGO_PYTORCH[precision]
    assert "lm_head" in hf_quant["quantization"]["exclude_modules"]
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "modelopt"
    assert (checkpoint / ptq.MODELOPT_STATE).stat().st_size > 0
    record = json.loads((checkpoint / ptq.CALIBRATION_FILE).read_text())
    assert record["seed"] == 7
    assert record["size"] == 16
    verification = verify_dir(plan, checkpoint)
    assert verification.ok, verification.findings

    dataset = tiny_tree / "pvc" / "data" / "eval"
    quantized = _eval(checkpoint, dataset)
    reference = _eval(Path(plan.model.local_dir), dataset)
    assert quantized["loader"] == "modelopt-restore"
    assert reference["loader"] == "transformers"
    assert math.isfinite(quantized["score"])
    assert quantized["tokens"] == reference["tokens"] > 0
    # A random-weight model predicts nearly uniformly over 260 tokens; quantization keeps it there.
    assert abs(quantized["score"] - reference["score"]) < 0.1 * reference["score"]
