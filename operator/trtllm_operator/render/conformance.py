"""Would the real TensorRT-LLM accept the command lines we render? Pure checks against ``cli_tables``.

Each rendered argv is matched to the tool it runs (trtllm-build, quantize.py, convert_checkpoint.py,
prepare_dataset.py, trtllm-bench, trtllm-eval, trtllm-serve) and parsed with that tool's table at
the image's release line. Our own programs (``trtllm-operator-*``) and plain utilities are not
TensorRT-LLM's and are skipped.
"""

from __future__ import annotations

from collections.abc import Sequence

from trtllm_operator.api.plan import BuildPlan
from trtllm_operator.trtllm.cli import Command, check_argv
from trtllm_operator.trtllm.cli_tables import Tables, convert_family, tables_for


def tool_of(argv: Sequence[str], tables: Tables) -> tuple[Command | None, list[str], str]:
    """(table, arguments after the program, program name); no table for tools that are not TensorRT-LLM's."""
    if not argv:
        return None, [], ""
    program, rest = argv[0], list(argv[1:])
    if program == "python3" and rest:
        program, rest = rest[0], rest[1:]
    name = program.rsplit("/", 1)[-1]
    by_name = {
        "trtllm-build": tables.trtllm_build,
        "quantize.py": tables.quantize,
        "convert_checkpoint.py": tables.convert_checkpoint,
        "prepare_dataset.py": tables.prepare_dataset_script,
        "trtllm-bench": tables.trtllm_bench,
        "trtllm-eval": tables.trtllm_eval,
        "trtllm-serve": tables.trtllm_serve,
    }
    if name not in by_name:
        return None, rest, name
    table = by_name[name]
    family = convert_family(program)
    if name == "convert_checkpoint.py" and family is not None and tables.convert_checkpoint is not None:
        # each family's script has its own parser; a family without one is no script we know
        table = tables.convert_checkpoint_by_family.get(family) or _absent(program, tables)
        return table, rest, program
    if table is None:
        return _absent(name, tables), rest, name
    return table, rest, name


def _absent(name: str, tables: Tables) -> Command:
    """A table that rejects everything: the tool does not exist at this line."""
    return Command(f"{name} (absent in TensorRT-LLM {tables.line})", tables.trtllm_bench.source, ())


def argv_problems(argv: Sequence[str], tables: Tables) -> list[str]:
    table, rest, name = tool_of(argv, tables)
    if table is None:
        return []
    if not table.options and not table.subcommands:
        known = ", ".join(sorted(tables.convert_checkpoint_by_family))
        families = (
            f" (convert_checkpoint.py tables: {known})" if known and "convert_checkpoint" in name else ""
        )
        return [f"{name} does not exist in TensorRT-LLM {tables.line}{families}"]
    return check_argv(table, rest)


def plan_problems(plan: BuildPlan) -> list[str]:
    """Every step of a build plan that the real parser of the image's version would reject."""
    tables = tables_for(plan.backend, plan.image)
    return [f"step {step.name}: {p}" for step in plan.steps for p in argv_problems(step.argv, tables)]
