"""``trtllm-operator render``: what the operator would create for a TRTEngine, without a cluster.

Reads a TRTEngine YAML and the cluster's nodes (``kubectl get nodes -o yaml``, or the simulated
default fleet), chooses the GPU target exactly as the operator does and prints the children as a
YAML stream, with the choice and any warnings as comments. Exit codes: 0 rendered, 1 no node can
take the build, 2 invalid input.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Iterable
from typing import Any, Final, TextIO

import yaml
from pydantic import ValidationError

from trtllm_operator.api.constants import ENGINE_NAME_MAX
from trtllm_operator.api.engine import TRTEngine
from trtllm_operator.gpu import GpuNodeFacts, facts_from_node
from trtllm_operator.reconcile.placement import NoFit, choose_target
from trtllm_operator.reconcile.warnings import calibration_domain_mismatch, inflight_batching_warning
from trtllm_operator.render.job import render_engine_children
from trtllm_operator.render.names import build_config_hash
from trtllm_operator.render.plan import RenderConfig, render_plan
from trtllm_operator.render.presets import build_flags

EXIT_RENDERED: Final = 0
EXIT_NO_FIT: Final = 1
EXIT_INVALID: Final = 2
OFFLINE_REVISION: Final = 1
_NAME_RE: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class _ReviewDumper(yaml.SafeDumper):
    """yaml.safe_dump, but multi-line strings (plan.json, steps.sh) as literal blocks a reviewer can read."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_ReviewDumper.add_representer(str, _str_representer)


def dump_yaml(obj: Any) -> str:
    """Safe YAML (only plain data), keys in the order rendered."""
    return yaml.dump(obj, Dumper=_ReviewDumper, sort_keys=False, allow_unicode=True)


class InputError(Exception):
    """The engine or nodes file can't be used; the message says why."""


def _load_yaml(path: str) -> list[Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            return [doc for doc in yaml.safe_load_all(handle) if doc is not None]
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise InputError(f"{path} is not valid YAML: {exc}") from exc


def _validation_errors(exc: ValidationError) -> str:
    return "\n".join(
        f"  {'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}" for err in exc.errors()
    )


def load_engine(path: str) -> tuple[str, str, TRTEngine]:
    """(namespace, name, validated TRTEngine) from a YAML file holding one TRTEngine."""
    docs = [d for d in _load_yaml(path) if isinstance(d, dict) and d.get("kind", "TRTEngine") == "TRTEngine"]
    if len(docs) != 1:
        raise InputError(f"{path} must contain exactly one TRTEngine, found {len(docs)}")
    doc = docs[0]
    meta = doc.get("metadata") or {}
    name, namespace = str(meta.get("name") or ""), str(meta.get("namespace") or "default")
    if len(name) > ENGINE_NAME_MAX or not _NAME_RE.match(name):
        raise InputError(
            f"metadata.name {name!r} must be a DNS label of at most {ENGINE_NAME_MAX} characters "
            "(lowercase letters, digits, '-')"
        )
    try:
        engine = TRTEngine.model_validate(doc)
    except ValidationError as exc:
        raise InputError(f"{path}: invalid TRTEngine {name}:\n{_validation_errors(exc)}") from exc
    storage = engine.spec.storage
    if (storage.existingClaim is None) == (storage.claim is None):
        raise InputError(
            "spec.storage: set exactly one of existingClaim (a PVC you made) or claim (the operator creates "
            f"{name}-engines)"
        )
    return namespace, name, engine


def _node_objects(docs: Iterable[Any]) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = []
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        if doc.get("kind") in ("List", "NodeList") or "items" in doc:
            nodes.extend(item for item in doc.get("items") or [] if isinstance(item, dict))
        elif doc.get("kind", "Node") == "Node":
            nodes.append(doc)
    return nodes


def load_nodes(path: str | None) -> list[GpuNodeFacts]:
    """GPU facts of the nodes in ``path`` (a List or a stream of Nodes), or of the default simulated fleet."""
    if path is None:
        # Dev tooling, imported only when the offline CLI needs the simulated fleet.
        fleet = importlib.import_module("trtllm_operator.dev.fleet")
        nodes = list(fleet.default_nodes())
    else:
        nodes = _node_objects(_load_yaml(path))
    return [facts for node in nodes if (facts := facts_from_node(node)) is not None]


def _comment(prefix: str, text: str) -> str:
    return "\n".join(
        f"# {prefix}{line}" if i == 0 else f"#   {line}" for i, line in enumerate(text.splitlines())
    )


def run_render(engine_path: str, nodes_path: str | None, out: TextIO) -> int:
    """Render a TRTEngine's children to ``out``; errors go to stderr. Returns the exit code."""
    try:
        namespace, name, engine = load_engine(engine_path)
        nodes = load_nodes(nodes_path)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    spec = engine.spec
    placement = choose_target(spec, nodes)
    if isinstance(placement, NoFit):
        print(f"reason: {placement.reason}\nmessage: {placement.message}", file=sys.stderr)
        return EXIT_NO_FIT
    config_hash = build_config_hash(spec)
    cfg = RenderConfig()
    plan = render_plan(namespace, name, spec, OFFLINE_REVISION, config_hash, placement, cfg)
    children = render_engine_children(None, namespace, name, spec, plan, placement, cfg)
    header = [_comment("target: ", placement.reason)]
    warnings = [calibration_domain_mismatch(spec)]
    if spec.backend == "tensorrt":
        warnings.append(inflight_batching_warning(build_flags(spec, placement.cc, spec.model.architecture)))
    header += [_comment("warning: ", w) for w in warnings if w]
    header += [_comment("note: ", n) for n in plan.notes]
    out.write("\n".join(header) + "\n")
    for child in children:
        out.write("---\n")
        out.write(dump_yaml(child))
    return EXIT_RENDERED
