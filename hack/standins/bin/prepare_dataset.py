#!/usr/bin/env python3
"""Stand-in for TensorRT-LLM's `prepare_dataset.py`: see trtllm_operator.dev.standins.prepare_dataset."""

import sys
from pathlib import Path

# The checkout's operator/ wins over an installed copy: these scripts belong to this tree.
_OPERATOR = Path(__file__).resolve().parents[3] / "operator"
if _OPERATOR.is_dir() and str(_OPERATOR) not in sys.path:
    sys.path.insert(0, str(_OPERATOR))

from trtllm_operator.dev.standins.prepare_dataset import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
