"""Stand-in for ``examples/models/core/<family>/convert_checkpoint.py`` (HF -> unquantized checkpoint).

The parser is llama's real one (``trtllm/cli_tables.py`` CONVERT_12, transcribed from
``examples/models/core/llama/convert_checkpoint.py``; the other families' scripts are checked
against it too), so a valid flag is accepted and an invalid one refused; only ``--model_dir``,
``--output_dir``, ``--dtype``, ``--tp_size`` and ``--pp_size`` change what is written. Runs on CPU
like the real converters, and writes the same checkpoint layout as ``quantize.py`` with
``quant_algo`` and ``kv_cache_quant_algo`` null (no ``calibration`` block).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from trtllm_operator.dev.standins._artifacts import (
    checkpoint_config,
    load_hf_model,
    make_mapping,
    resolve_dtype,
    write_checkpoint,
)
from trtllm_operator.dev.standins._common import ToolError, run_tool, say, step
from trtllm_operator.trtllm.cli import to_argparse
from trtllm_operator.trtllm.cli_tables import CONVERT_12

TOOL: Final = "convert_checkpoint.py"


def build_parser() -> argparse.ArgumentParser:
    """Exactly the options of the real llama convert_checkpoint.py of the 1.2 line (``cli_tables``)."""
    return to_argparse(CONVERT_12, description=__doc__.splitlines()[0])


def execute(args: argparse.Namespace) -> None:
    if args.model_dir is None:  # default None upstream; the HF path then fails on it
        raise ToolError("--model_dir is required (a Hugging Face checkpoint directory)", "ValueError")
    hf = load_hf_model(args.model_dir)
    dtype = resolve_dtype(args.dtype, hf.torch_dtype)
    mapping = make_mapping(args.tp_size, args.pp_size)
    step(f"Loading {hf.architecture} weights from {hf.path}")
    step(f"Converting to {dtype} with tp_size={args.tp_size} pp_size={args.pp_size}")
    quantization = {"quant_algo": None, "kv_cache_quant_algo": None}
    write_checkpoint(Path(args.output_dir), checkpoint_config(hf, dtype, mapping, quantization))
    say(f"Total time of converting checkpoints: 00:00:00 ({args.output_dir})")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_tool(TOOL, lambda: execute(args))
