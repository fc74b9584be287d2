"""Stand-in for ``examples/models/core/<family>/convert_checkpoint.py`` (HF -> unquantized checkpoint).

Each family's script has its own parser (``trtllm/cli_tables.py`` CONVERT_12_BY_FAMILY: llama, qwen,
gemma, phi), and the stand-in takes the one of the family its path names
(``.../models/core/<family>/convert_checkpoint.py``; llama's when run from elsewhere), so a valid
flag is accepted and an invalid one refused. Only the model and output directories, ``--dtype`` and
the parallel sizes change what is written (gemma: ``--world-size`` is the TP size, no pipeline
parallelism; phi: ``pp_size`` must be 1). Runs on CPU like the real converters, and writes the same
checkpoint layout as ``quantize.py`` with ``quant_algo`` and ``kv_cache_quant_algo`` null.
"""

from __future__ import annotations

import argparse
import sys
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
from trtllm_operator.trtllm.cli import Command, to_argparse
from trtllm_operator.trtllm.cli_tables import CONVERT_12_BY_FAMILY, convert_family

TOOL: Final = "convert_checkpoint.py"


def family_of(script: str | None) -> str:
    """The family whose script this is: the ``models/core/<family>`` directory, else llama."""
    return convert_family(script or "") or "llama"


def table_of(family: str) -> Command:
    table = CONVERT_12_BY_FAMILY.get(family)
    if table is None:
        known = ", ".join(sorted(CONVERT_12_BY_FAMILY))
        raise SystemExit(f"convert_checkpoint.py: no {family} script in TensorRT-LLM 1.2 (tables: {known})")
    return table


def build_parser(family: str = "llama") -> argparse.ArgumentParser:
    """Exactly the options of the real ``<family>`` convert_checkpoint.py of the 1.2 line (``cli_tables``)."""
    return to_argparse(table_of(family), description=__doc__.splitlines()[0])


def _sizes(family: str, args: argparse.Namespace) -> tuple[int, int]:
    if family == "gemma":
        return int(args.world_size), 1  # Mapping(world_size, tp_size=world_size, pp_size=1)
    if family == "phi" and args.pp_size != 1:
        raise ToolError("Pipeline parallelism is not supported.", "AssertionError")
    return int(args.tp_size), int(args.pp_size)


def execute(family: str, args: argparse.Namespace) -> None:
    if family == "gemma" and args.ckpt_type is None:  # CKPT_PARSER[args.ckpt_type] upstream
        raise ToolError("None", "KeyError")
    if args.model_dir is None:  # default None upstream (llama, phi); the HF path then fails on it
        raise ToolError("--model_dir is required (a Hugging Face checkpoint directory)", "ValueError")
    output = Path(args.output_model_dir if family == "gemma" else args.output_dir)
    tp, pp = _sizes(family, args)
    hf = load_hf_model(args.model_dir)
    dtype = resolve_dtype(args.dtype, hf.torch_dtype)
    mapping = make_mapping(tp, pp)
    step(f"Loading {hf.architecture} weights from {hf.path} ({family} script)")
    step(f"Converting to {dtype} with tp_size={tp} pp_size={pp}")
    quantization = {"quant_algo": None, "kv_cache_quant_algo": None}
    write_checkpoint(output, checkpoint_config(hf, dtype, mapping, quantization))
    say(f"Total time of converting checkpoints: 00:00:00 ({output})")


def main(argv: Sequence[str] | None = None, script: str | None = None) -> int:
    family = family_of(script if script is not None else sys.argv[0])
    args = build_parser(family).parse_args(argv)
    return run_tool(TOOL, lambda: execute(family, args))
