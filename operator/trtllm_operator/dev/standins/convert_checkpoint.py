"""Stand-in for ``examples/models/core/<family>/convert_checkpoint.py`` (HF -> unquantized checkpoint).

Only the flags ``shared/reference/trtllm.md`` documents (``--model_dir --output_dir --dtype --tp_size
--pp_size``). Runs on CPU like the real converters, and writes the same checkpoint layout as
``quantize.py`` with ``quant_algo`` and ``kv_cache_quant_algo`` null (no ``calibration`` block).
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
from trtllm_operator.dev.standins._common import run_tool, say, step

TOOL: Final = "convert_checkpoint.py"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=TOOL, allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--output_dir", default="tllm_checkpoint")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float16", "bfloat16", "float32"])
    parser.add_argument("--tp_size", type=int, default=1)
    parser.add_argument("--pp_size", type=int, default=1)
    return parser


def execute(args: argparse.Namespace) -> None:
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
