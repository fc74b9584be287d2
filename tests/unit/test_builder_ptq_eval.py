"""The pure parts of trtllm-operator-ptq and trtllm-operator-eval, and their stand-ins."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from trtllm_operator.builder import evaluate, ptq

from .builder_support import BIN, H100, builder_env, write_hf_model, write_texts

# --- ModelOpt configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("qformat", "kv", "weights", "kv_config"),
    [
        ("fp8", "fp8", "FP8_DEFAULT_CFG", "FP8_KV_CFG"),
        ("int8_sq", "none", "INT8_SMOOTHQUANT_CFG", None),
        ("int4_awq", "none", "INT4_AWQ_CFG", None),
        ("w4a8_awq", "fp8", "W4A8_AWQ_BETA_CFG", "FP8_KV_CFG"),
        ("nvfp4", "fp8", "NVFP4_DEFAULT_CFG", "FP8_KV_CFG"),
        ("int8_wo", "none", "INT8_WEIGHT_ONLY_CFG", None),
        ("int4_wo", "none", "INT4_BLOCKWISE_WEIGHT_ONLY_CFG", None),
        ("full_prec", "fp8", None, "FP8_KV_CFG"),
    ],
)
def test_recipe_names_the_modelopt_configs(
    qformat: str, kv: str, weights: str | None, kv_config: str | None
) -> None:
    recipe = ptq.recipe_for(qformat, kv)
    assert (recipe.weights, recipe.kv_config) == (weights, kv_config)
    assert recipe.quantizes


def test_recipes_that_cannot_work_are_refused() -> None:
    assert not ptq.recipe_for("full_prec", "none").quantizes
    with pytest.raises(ValueError, match="unknown qformat"):
        ptq.recipe_for("fp4", "none")
    with pytest.raises(ValueError, match="kv_cache_dtype int8 cannot be exported"):
        ptq.recipe_for("fp8", "int8")


#: ModelOpt <= 0.3x: quant_cfg is a dict of pattern -> attributes.
DICT_FP8 = {
    "quant_cfg": {"*weight_quantizer": {"num_bits": (4, 3)}, "default": {"enable": False}},
    "algorithm": "max",
}
DICT_FP8_KV = {
    "quant_cfg": {
        "*[kv]_bmm_quantizer": {"num_bits": (4, 3), "axis": None, "enable": True},
        "default": {"enable": False},
    }
}
#: ModelOpt 0.47: quant_cfg is a list of {"quantizer_name": pattern, ...} entries; KV presets are partial.
LIST_FP8 = {
    "quant_cfg": [
        {"quantizer_name": "*", "enable": False},
        {"quantizer_name": "*weight_quantizer", "cfg": {"num_bits": (4, 3)}},
    ],
    "algorithm": "max",
}
LIST_FP8_KV = {"quant_cfg": [{"quantizer_name": "*[kv]_bmm_quantizer", "cfg": {"num_bits": (4, 3)}}]}


def test_kv_config_merges_into_the_dict_layout() -> None:
    merged = ptq.merge_kv_config(DICT_FP8, DICT_FP8_KV)
    assert merged["quant_cfg"] == {
        "*weight_quantizer": {"num_bits": (4, 3)},
        "default": {"enable": False},
        "*[kv]_bmm_quantizer": {"num_bits": (4, 3), "axis": None, "enable": True},
    }
    assert "*[kv]_bmm_quantizer" not in DICT_FP8["quant_cfg"]  # the library's constant is never mutated


def test_kv_config_merges_into_the_list_layout() -> None:
    merged = ptq.merge_kv_config(LIST_FP8, LIST_FP8_KV)
    assert merged["quant_cfg"] == [*LIST_FP8["quant_cfg"], *LIST_FP8_KV["quant_cfg"]]
    assert merged["algorithm"] == "max"
    with pytest.raises(ValueError, match="different quant_cfg layouts"):
        ptq.merge_kv_config(DICT_FP8, LIST_FP8_KV)


@pytest.mark.parametrize(("weights", "kv"), [(DICT_FP8, DICT_FP8_KV), (LIST_FP8, LIST_FP8_KV)])
def test_kv_only_quantization_disables_everything_else_in_the_same_layout(
    weights: dict[str, Any], kv: dict[str, Any]
) -> None:
    mtq = SimpleNamespace(FP8_DEFAULT_CFG=weights, FP8_KV_CFG=kv)
    config = ptq.build_quant_config(mtq, ptq.recipe_for("full_prec", "fp8"))
    if isinstance(kv["quant_cfg"], list):
        assert config["quant_cfg"] == [{"quantizer_name": "*", "enable": False}, *kv["quant_cfg"]]
    else:
        assert config["quant_cfg"] == {
            "*": {"enable": False},
            "*[kv]_bmm_quantizer": kv["quant_cfg"]["*[kv]_bmm_quantizer"],
        }


def test_build_quant_config_prefers_modelopts_own_merge() -> None:
    calls: list[tuple[Any, Any]] = []

    def update_quant_cfg_with_kv_cache_quant(base: dict[str, Any], kv_entries: list[Any]) -> dict[str, Any]:
        calls.append((base, kv_entries))
        return {"merged": True}

    mtq = SimpleNamespace(
        FP8_DEFAULT_CFG=LIST_FP8,
        FP8_KV_CFG=LIST_FP8_KV,
        utils=SimpleNamespace(update_quant_cfg_with_kv_cache_quant=update_quant_cfg_with_kv_cache_quant),
    )
    assert ptq.build_quant_config(mtq, ptq.recipe_for("fp8", "fp8")) == {"merged": True}
    assert calls == [(LIST_FP8, LIST_FP8_KV["quant_cfg"])]
    assert ptq.build_quant_config(mtq, ptq.recipe_for("fp8", "none")) == LIST_FP8


def test_calibration_needs_and_awq_cap() -> None:
    assert not ptq.needs_calibration("int4_wo", "none")
    assert ptq.needs_calibration("int4_wo", "fp8")
    assert ptq.needs_calibration("fp8", "none")
    assert ptq.effective_calib_size("int4_awq", 512) == 32
    assert ptq.effective_calib_size("fp8", 512) == 512


def test_torch_dtype_is_a_name_for_a_torch_attribute() -> None:
    assert ptq.torch_dtype_name({"torch_dtype": "float16"}) == "float16"
    assert ptq.torch_dtype_name({"dtype": "torch.bfloat16"}) == "bfloat16"
    assert ptq.torch_dtype_name({"torch_dtype": "float32"}) == "bfloat16"
    assert ptq.torch_dtype_name({}) == "bfloat16"


# --- texts -----------------------------------------------------------------------------------------


def test_read_texts_from_txt_jsonl_and_json(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("first line\n\nsecond line\n")
    (tmp_path / "b.jsonl").write_text('{"text": "from jsonl"}\n\n{"other": 1}\n')
    (tmp_path / "c.json").write_text(json.dumps([{"text": "from json"}, "bare string"]))
    (tmp_path / "ignored.bin").write_bytes(b"\x00")
    assert ptq.read_texts(tmp_path) == ["first line", "second line", "from jsonl", "from json", "bare string"]


def test_read_texts_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        ptq.read_texts(tmp_path / "absent")
    with pytest.raises(ValueError, match="no text found"):
        ptq.read_texts(tmp_path)
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(ValueError, match="cannot read"):
        ptq.read_texts(tmp_path)


def test_seeded_sampling_is_reproducible_and_keeps_order() -> None:
    texts = [f"t{i}" for i in range(100)]
    first = ptq.select_samples(texts, 10, seed=1234)
    assert first == ptq.select_samples(texts, 10, seed=1234)
    assert first != ptq.select_samples(texts, 10, seed=1)
    assert first == sorted(first, key=texts.index)
    assert len(set(first)) == 10
    assert ptq.select_samples(texts[:3], 10, seed=1) == texts[:3]
    assert ptq.samples_sha256(first) == ptq.samples_sha256(list(first))
    assert ptq.samples_sha256(["ab", "c"]) != ptq.samples_sha256(["a", "bc"])


def test_ptq_flags() -> None:
    args = ptq.build_parser().parse_args(["--model_dir", "m", "--output_dir", "o", "--qformat", "nvfp4"])
    assert (args.kv_cache_dtype, args.calib_size, args.calib_max_seq_length, args.seed, args.batch_size) == (
        "none",
        512,
        512,
        1234,
        1,
    )
    with pytest.raises(SystemExit):
        ptq.build_parser().parse_args(["--model_dir", "m", "--output_dir", "o", "--qformat", "fp4"])


# --- perplexity arithmetic -------------------------------------------------------------------------


def test_perplexity_is_exp_of_the_mean_token_nll() -> None:
    total = evaluate.NllTotal()
    total.add(*evaluate.nll_of([math.log(0.5)] * 4))
    total.add(*evaluate.nll_of([math.log(0.25)] * 4))
    assert total.tokens == 8
    assert total.perplexity() == pytest.approx(math.exp((4 * math.log(2) + 4 * math.log(4)) / 8))
    assert evaluate.NllTotal(nll=0.0, tokens=3).perplexity() == 1.0
    with pytest.raises(ValueError, match="no token was scored"):
        evaluate.NllTotal().perplexity()
    with pytest.raises(ValueError, match="invalid NLL contribution"):
        total.add(float("nan"), 1)


def test_token_windows() -> None:
    assert evaluate.token_windows(list(range(10)), 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert evaluate.token_windows(list(range(9)), 4) == [[0, 1, 2, 3], [4, 5, 6, 7]]  # [8] predicts nothing
    assert evaluate.token_windows(list(range(10)), 4, max_windows=1) == [[0, 1, 2, 3]]
    with pytest.raises(ValueError, match="at least 2"):
        evaluate.token_windows([1, 2], 1)


def test_corpus_joins_documents(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"text": "one"}\n{"text": "two"}\n')
    assert evaluate.corpus(tmp_path) == "one\n\ntwo"


@pytest.mark.parametrize(
    ("facts", "trtllm", "loader"),
    [
        (evaluate.ModelFacts("pytorch", True, False), True, "trtllm"),
        (evaluate.ModelFacts("tensorrt", False, False), True, "trtllm"),
        (evaluate.ModelFacts("pytorch", False, False), False, "transformers"),
        (evaluate.ModelFacts("pytorch", True, True), False, "modelopt-restore"),
    ],
)
def test_loader_choice(facts: evaluate.ModelFacts, trtllm: bool, loader: str) -> None:
    assert evaluate.choose_loader(facts, trtllm) == loader


@pytest.mark.parametrize(
    "facts", [evaluate.ModelFacts("pytorch", True, False), evaluate.ModelFacts("tensorrt", False, False)]
)
def test_no_loader_without_tensorrt_llm(facts: evaluate.ModelFacts) -> None:
    with pytest.raises(evaluate.LoaderError):
        evaluate.choose_loader(facts, trtllm_available=False)


def test_model_facts_detects_a_modelopt_export(tmp_path: Path) -> None:
    write_hf_model(tmp_path)
    assert evaluate.model_facts(tmp_path, "pytorch") == evaluate.ModelFacts("pytorch", False, False)
    config = json.loads((tmp_path / "config.json").read_text()) | {
        "quantization_config": {"quant_method": "modelopt"}
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert evaluate.model_facts(tmp_path, "pytorch").modelopt_quantized


def test_result_line() -> None:
    line = json.loads(evaluate.result_line(6.12345678, 100, 2, "trtllm", 6.0))
    assert line == {
        "task": "perplexity",
        "metric": "perplexity",
        "score": 6.123457,
        "tokens": 100,
        "windows": 2,
        "loader": "trtllm",
        "reference": 6.0,
        "delta": 0.123457,
    }


# --- the stand-ins ---------------------------------------------------------------------------------


def _tool(
    name: str, *args: str | Path, gpus: list[dict[str, Any]], **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / name), *map(str, args)],
        env=builder_env(gpus, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_ptq_standin_writes_the_modelopt_export_layout(tmp_path: Path) -> None:
    model, calib, out = write_hf_model(tmp_path / "model"), write_texts(tmp_path / "calib"), tmp_path / "out"
    done = _tool(
        "trtllm-operator-ptq",
        "--model_dir",
        model,
        "--output_dir",
        out,
        "--qformat",
        "int4_awq",
        "--kv_cache_dtype",
        "fp8",
        "--calib_dataset",
        calib,
        "--calib_size",
        "64",
        gpus=[H100],
    )
    assert done.returncode == 0, done.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "modelopt"
    hf_quant = json.loads((out / "hf_quant_config.json").read_text())
    assert hf_quant["producer"]["name"] == "modelopt"
    assert hf_quant["quantization"]["quant_algo"] == "W4A16_AWQ"
    assert hf_quant["quantization"]["kv_cache_quant_algo"] == "FP8"
    assert hf_quant["quantization"]["exclude_modules"] == ["lm_head", "model.embed_tokens"]
    record = json.loads((out / "calibration.json").read_text())
    assert record["size"] == 20
    assert record["seed"] == 1234
    assert record["sha256"] == ptq.samples_sha256(ptq.select_samples(ptq.read_texts(calib), 32, 1234))
    assert (out / "model.safetensors").stat().st_size > 0
    assert (out / "tokenizer_config.json").is_file()


def test_ptq_standin_refuses_an_int8_kv_cache_before_loading_anything(tmp_path: Path) -> None:
    model = write_hf_model(tmp_path / "model")
    done = _tool(
        "trtllm-operator-ptq",
        "--model_dir",
        model,
        "--output_dir",
        tmp_path / "o",
        "--qformat",
        "fp8",
        "--kv_cache_dtype",
        "int8",
        gpus=[H100],
    )
    assert done.returncode == 1
    assert "ValueError: kv_cache_dtype int8 cannot be exported" in done.stderr
    assert not (tmp_path / "o").exists()


def test_eval_standin_prints_the_json_line(tmp_path: Path) -> None:
    model, data = write_hf_model(tmp_path / "model"), write_texts(tmp_path / "data", count=40)
    done = _tool(
        "trtllm-operator-eval",
        "--model",
        model,
        "--dataset",
        data,
        "--max_length",
        "64",
        "--reference",
        model,
        gpus=[H100],
    )
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout.strip().splitlines()[-1])
    assert (line["task"], line["metric"]) == ("perplexity", "perplexity")
    assert line["score"] == line["reference"]
    assert line["delta"] == 0.0
    failed = _tool(
        "trtllm-operator-eval",
        "--model",
        model,
        "--dataset",
        data,
        gpus=[H100],
        TRTLLM_SIM_FAIL="trtllm-operator-eval",
    )
    assert failed.returncode == 1
    assert "simulated failure in trtllm-operator-eval" in failed.stderr
