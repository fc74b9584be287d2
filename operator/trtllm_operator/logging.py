"""Structured JSON logs on stderr, with secrets masked before they are rendered.

Every process of the project (operator, build pod) logs one JSON object per line so ``kubectl logs``
output can be filtered with ``jq`` and shipped to any collector without parsing. The build pod sees
the Hugging Face token in its environment and streams third-party tool output into the log, so a
token can end up in an event by accident (an echoed command line, a URL); the redaction processor
is the last line of defence and runs on every event, whatever its source.

Redaction rules:

* a *string* value whose key contains ``token``, ``secret`` or ``password`` (any case) becomes
  ``"***"``; numbers are left alone, because keys such as ``max_num_tokens`` carry counts, not
  credentials;
* any substring matching ``hf_[A-Za-z0-9]{10,}`` (the Hugging Face token format), in any value or
  key path, becomes ``hf_***``.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, Final, TextIO

import structlog

SENSITIVE_KEY_PARTS: Final = ("token", "secret", "password")
HF_TOKEN_RE: Final = re.compile(r"hf_[A-Za-z0-9]{10,}")
MASK: Final = "***"
HF_MASK: Final = "hf_***"


def is_sensitive_key(key: object) -> bool:
    lowered = str(key).lower()
    return any(part in lowered for part in SENSITIVE_KEY_PARTS)


def mask_text(text: str) -> str:
    """``text`` with every Hugging Face token replaced by ``hf_***``."""
    return HF_TOKEN_RE.sub(HF_MASK, text)


def _redact_value(key: object, value: Any) -> Any:
    if isinstance(value, str):
        return MASK if is_sensitive_key(key) else mask_text(value)
    if isinstance(value, Mapping):
        return {k: _redact_value(k, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(key, item) for item in value]
    return value


def redact(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask credentials in every field (recursively) of the event."""
    for key in list(event_dict):
        event_dict[key] = _redact_value(key, event_dict[key])
    return event_dict


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """JSON lines on ``stream`` (default: the current ``sys.stderr``): timestamp (ISO, UTC), level, event."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.WriteLoggerFactory(file=stream if stream is not None else sys.stderr),
        cache_logger_on_first_use=False,
    )
