"""``python -m trtllm_operator.builder``: command-line parsing, logging and signals around :mod:`.run`.

Usage errors are reported like an invalid plan (a result is written, exit ``EXIT_INVALID_PLAN``):
the Job must stop rather than retry a command line that can never work. SIGTERM (pod deletion,
``activeDeadlineSeconds``) stops the running tool and still writes a result.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import NoReturn

from trtllm_operator.api import reasons
from trtllm_operator.api.constants import EXIT_INVALID_PLAN, PLAN_FILE, PLAN_MOUNT, TERMINATION_LOG
from trtllm_operator.api.plan import BuildResult
from trtllm_operator.builder.remap import RemapError, parse_remap
from trtllm_operator.builder.run import BuildInterrupted, Options, run_build, write_result
from trtllm_operator.logging import configure_logging


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="trtllm-operator-builder", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--plan",
        type=Path,
        default=Path(os.environ.get("TRTLLM_PLAN") or f"{PLAN_MOUNT}/{PLAN_FILE}"),
        help="BuildPlan JSON (default: $TRTLLM_PLAN or %(default)s)",
    )
    parser.add_argument(
        "--result-file",
        type=Path,
        default=Path(os.environ.get("TRTLLM_RESULT_FILE") or TERMINATION_LOG),
        help="where the BuildResult is written (default: $TRTLLM_RESULT_FILE or %(default)s)",
    )
    parser.add_argument(
        "--remap",
        action="append",
        default=[],
        metavar="SRC=DST",
        help="rewrite the path prefix SRC to DST everywhere in the plan (repeatable)",
    )
    return parser


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise BuildInterrupted()


def _usage_failure(result_file: Path, message: str) -> int:
    write_result(result_file, BuildResult(ok=False, reason=reasons.INVALID_PLAN, message=message))
    return EXIT_INVALID_PLAN


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()
    try:
        args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except UsageError as exc:
        return _usage_failure(Path(os.environ.get("TRTLLM_RESULT_FILE") or TERMINATION_LOG), str(exc))
    try:
        remaps = tuple(parse_remap(item) for item in args.remap)
    except RemapError as exc:
        return _usage_failure(args.result_file, str(exc))
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return run_build(Options(plan=args.plan, result_file=args.result_file, remaps=remaps))
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
