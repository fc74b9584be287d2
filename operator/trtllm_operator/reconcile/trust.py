"""Nothing from outside the operator is trusted: checks on what the build pod reports and on status.engine.

The build pod's termination message is written by a program running an arbitrary image, and
``status.engine`` can be patched by anyone allowed to write the status subresource. Before either
reaches the status or a serving Deployment's volume mount, it must have the shape the operator itself
would have produced: bounded lengths, well-formed values, and an engine uri that lies under the
engine's own directory (``pvc://<its claim>/<spec.storage.path>/<its name>/``) on its own claim.

Each check returns None or one sentence naming the field and what is wrong, so a bad value becomes a
``Stalled`` condition with reason ``InvalidBuildResult`` / ``InvalidEngineStatus`` instead of a frozen
status write or a mount outside the engine directory.
"""

from __future__ import annotations

import re

from trtllm_operator.api.engine import EngineStatus, TRTEngineSpec
from trtllm_operator.api.plan import BuildResult
from trtllm_operator.render.plan import engine_claim

REASON = re.compile(r"^[A-Z][A-Za-z0-9]{0,127}$")
COMPUTE_CAPABILITY = re.compile(r"^[0-9]{1,2}\.[0-9]$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
#: One path segment of an engine uri: what render/plan produces (build-config hashes, names, files).
_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
MESSAGE_MAX = 4096
_SHORT_MAX = {"trtllm": 64, "gpu": 128}


def engine_dir_uri(name: str, spec: TRTEngineSpec) -> str:
    """``pvc://<claim>/<path>/<engine>``: every engine revision of this TRTEngine lies below it."""
    return f"pvc://{engine_claim(name, spec)}/{spec.storage.path}/{name}"


def uri_problem(field: str, uri: str, name: str, spec: TRTEngineSpec) -> str | None:
    """None when ``uri`` names a path strictly below this engine's own directory on its own claim."""
    root = engine_dir_uri(name, spec) + "/"
    if len(uri) > 1024 or not uri.startswith(root):
        return f"{field} {uri[:200]!r} is not under the engine's own directory {root}"
    rest = uri[len(root) :].split("/")
    if not all(_SEGMENT.match(segment) for segment in rest):
        return f"{field} {uri[:200]!r} has an empty, '..' or malformed path segment below {root}"
    return None


def build_result_problem(result: BuildResult, name: str, spec: TRTEngineSpec) -> str | None:
    """Why the build pod's reported result can't be trusted, or None."""
    if not REASON.match(result.reason):
        return f"result.reason {result.reason[:64]!r} is not a CamelCase reason of at most 128 characters"
    if len(result.message) > MESSAGE_MAX:
        return f"result.message is {len(result.message)} characters (at most {MESSAGE_MAX})"
    engine = result.engine
    if engine is None:
        return None
    if not COMPUTE_CAPABILITY.match(engine.cc):
        return f"result.engine.cc {engine.cc[:32]!r} is not a compute capability like 9.0"
    if not SHA256.match(engine.sha256):
        return f"result.engine.sha256 {engine.sha256[:80]!r} is not a sha256 hex digest"
    for key, limit in _SHORT_MAX.items():
        value = getattr(engine, key)
        if len(value) > limit:
            return f"result.engine.{key} is {len(value)} characters (at most {limit})"
    if engine.size < 0 or engine.files < 0:
        return "result.engine.size and result.engine.files must not be negative"
    return uri_problem("result.engine.uri", engine.uri, name, spec)


def engine_status_problem(engine: EngineStatus, name: str, spec: TRTEngineSpec) -> str | None:
    """Why a TRTEngine's status.engine must not be served (rendered into a volume mount), or None."""
    if engine.computeCapability and not COMPUTE_CAPABILITY.match(engine.computeCapability):
        return f"status.engine.computeCapability {engine.computeCapability!r} is not like 9.0"
    return uri_problem("status.engine.uri", engine.uri, name, spec)
