"""Generate the CustomResourceDefinitions from the pydantic models (``trtllm-operator crds``).

Pydantic emits JSON Schema with ``$ref``/``$defs``, ``anyOf [X, null]`` for optionals and titles; the
API server wants a *structural* OpenAPI v3 schema: everything inlined, one type per node, no nulls.
This module does that conversion, keeps descriptions (``kubectl explain``), defaults, bounds, enums
and the CEL rules (``x-kubernetes-validations``), and adds printer columns and subresources.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml
from pydantic import BaseModel

from trtllm_operator.api import constants as c
from trtllm_operator.api.engine import TRTEngine, TRTEngineSpec, TRTEngineStatus
from trtllm_operator.api.service import InferenceService, InferenceServiceSpec, InferenceServiceStatus

_DROP = {"title", "discriminator"}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
        extra = {k: v for k, v in node.items() if k != "$ref"}
        return _resolve({**target, **extra}, defs)
    return {k: _resolve(v, defs) for k, v in node.items() if k not in _DROP and k != "$defs"}


def _strip_null(node: dict[str, Any]) -> dict[str, Any]:
    """``anyOf: [X, {type: null}]`` (an Optional) becomes X, keeping the outer description."""
    options = node.get("anyOf")
    if not options:
        return node
    non_null = [o for o in options if o.get("type") != "null"]
    if len(non_null) == len(options) or len(non_null) != 1:
        return node
    merged = {**non_null[0], **{k: v for k, v in node.items() if k != "anyOf"}}
    if merged.get("default", 0) is None:
        del merged["default"]
    return merged


def _structural(node: Any) -> Any:
    if isinstance(node, list):
        return [_structural(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = _strip_null(node)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: _structural(prop) for name, prop in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _structural(value)
        elif key == "anyOf" and node.get("x-kubernetes-int-or-string"):
            out[key] = value
        elif key == "const":
            out["enum"] = [value]
        else:
            out[key] = value
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), int | float) and not isinstance(out.get(bound), bool):
            out[limit], out[bound] = out[bound], True  # JSON Schema 2020 -> OpenAPI v3.0 spelling
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if "enum" in out and out.get("type") == "string":
        out.setdefault("maxLength", max(len(str(v)) for v in out["enum"]))  # bounds CEL cost
    if "maxLength" in out and out.get("type") == "array":
        out["maxItems"] = out.pop("maxLength")
    if "minLength" in out and out.get("type") == "array":
        out["minItems"] = out.pop("minLength")
    if "maxLength" in out and out.get("type") == "object":
        out["maxProperties"] = out.pop("maxLength")
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
    out.pop("required", None) if out.get("required") == [] else None
    return out


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural schema of one model (spec or status)."""
    raw = model.model_json_schema(mode="validation", ref_template="#/$defs/{model}")
    resolved = _resolve(raw, raw.get("$defs", {}))
    schema: dict[str, Any] = _structural(resolved)
    return schema


def _root_rules(model: type[BaseModel]) -> list[dict[str, Any]]:
    extra = model.model_config.get("json_schema_extra")
    rules = extra.get("x-kubernetes-validations") if isinstance(extra, dict) else None
    return [dict(rule) for rule in rules if isinstance(rule, dict)] if isinstance(rules, list) else []


def _condition_column(name: str, type_: str, field: str = "status") -> dict[str, Any]:
    return {
        "name": name,
        "type": "string",
        "jsonPath": f'.status.conditions[?(@.type=="{type_}")].{field}',
    }


def _crd(
    *,
    kind: str,
    plural: str,
    singular: str,
    short: str,
    description: str,
    root: type[BaseModel],
    spec: type[BaseModel],
    status: type[BaseModel],
    columns: list[dict[str, Any]],
    scale: bool,
) -> dict[str, Any]:
    subresources: dict[str, Any] = {"status": {}}
    if scale:
        subresources["scale"] = {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{c.GROUP}", "labels": {c.LABEL_NAME: "trtllm-operator"}},
        "spec": {
            "group": c.GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
                "shortNames": [short],
                "categories": [c.CATEGORY],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": c.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": subresources,
                    "additionalPrinterColumns": [
                        *columns,
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {
                                    "type": "string",
                                    "description": "API version: trtllm.dev/v1alpha1.",
                                },
                                "kind": {"type": "string", "description": f"Kind: {kind}."},
                                "metadata": {
                                    "type": "object",
                                    # Declared so root CEL rules can name it in fieldPath; the API server
                                    # validates metadata.name itself (the rules only add length limits).
                                    "properties": {
                                        "name": {
                                            "type": "string",
                                            "maxLength": 253,
                                            "description": "Object name (see the kind's length limit).",
                                        }
                                    },
                                },
                                "spec": openapi_schema(spec),
                                "status": openapi_schema(status),
                            },
                            "x-kubernetes-validations": _root_rules(root),
                        }
                    },
                }
            ],
        },
    }


def engine_crd() -> dict[str, Any]:
    return _crd(
        kind=c.ENGINE_KIND,
        plural=c.ENGINE_PLURAL,
        singular=c.ENGINE_SINGULAR,
        short=c.ENGINE_SHORT,
        description=(TRTEngine.__doc__ or "").strip()
        + " The operator checks the request against the cluster's GPUs, builds it on a node whose compute "
        "capability supports the precision, verifies and validates it, and records the engine in status.",
        root=TRTEngine,
        spec=TRTEngineSpec,
        status=TRTEngineStatus,
        columns=[
            {"name": "Precision", "type": "string", "jsonPath": ".spec.precision"},
            {"name": "TP", "type": "integer", "jsonPath": ".spec.parallelism.tensor"},
            {"name": "GPU", "type": "string", "jsonPath": ".status.gpu.computeCapability"},
            {"name": "Product", "type": "string", "jsonPath": ".status.engine.gpuProduct"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            # One meaning of revision everywhere: the build-config generation of a TRTEngine. "Revision"
            # is the one being reconciled, "Promoted" the one InferenceServices serve.
            {"name": "Revision", "type": "integer", "jsonPath": ".status.revision"},
            {"name": "Promoted", "type": "integer", "jsonPath": ".status.engine.revision"},
            _condition_column("Ready", "Ready"),
            # A string the operator writes ("~1234 tok/s (sim)" for a simulated benchmark), never the
            # bare number: kubectl must not present a stand-in's estimate as a hardware measurement.
            {"name": "Bench", "type": "string", "jsonPath": ".status.benchmark.display", "priority": 1},
            {"name": "Engine", "type": "string", "jsonPath": ".status.engine.uri", "priority": 1},
            _condition_column("Reason", "Ready", "reason"),
        ],
        scale=False,
    )


def service_crd() -> dict[str, Any]:
    return _crd(
        kind=c.SERVICE_KIND,
        plural=c.SERVICE_PLURAL,
        singular=c.SERVICE_SINGULAR,
        short=c.SERVICE_SHORT,
        description=(InferenceService.__doc__ or "").strip(),
        root=InferenceService,
        spec=InferenceServiceSpec,
        status=InferenceServiceStatus,
        columns=[
            # A table cell shows only the first match of a JSONPath (".spec.engineRefs[*].name" would hide
            # every engine but one) and a list prints as JSON: the operator writes a one-line summary.
            {"name": "Engines", "type": "string", "jsonPath": ".status.engines"},
            {"name": "Promoted", "type": "integer", "jsonPath": ".status.engineRevision"},
            {"name": "Replicas", "type": "integer", "jsonPath": ".status.replicas"},
            {"name": "Ready-Replicas", "type": "integer", "jsonPath": ".status.readyReplicas"},
            _condition_column("Ready", "Ready"),
            {"name": "URL", "type": "string", "jsonPath": ".status.url", "priority": 1},
            _condition_column("Reason", "Ready", "reason"),
        ],
        scale=True,
    )


HEADER = "# Generated by `trtllm-operator crds` from trtllm_operator.api; do not edit by hand.\n"


def render_crds() -> dict[str, str]:
    """File name -> YAML text of every CRD."""
    return {
        f"{c.GROUP}_{c.ENGINE_PLURAL}.yaml": HEADER
        + yaml.safe_dump(engine_crd(), sort_keys=False, width=120),
        f"{c.GROUP}_{c.SERVICE_PLURAL}.yaml": HEADER
        + yaml.safe_dump(service_crd(), sort_keys=False, width=120),
    }
