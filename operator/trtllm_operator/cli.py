"""The `trtllm-operator` command: run the operator, generate CRDs, render offline, run the dev cluster."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _crds(args: argparse.Namespace) -> int:
    from trtllm_operator.api.crd import render_crds

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    rendered = render_crds()
    if args.check:
        stale = [
            name
            for name, text in rendered.items()
            if not (out / name).exists() or (out / name).read_text() != text
        ]
        if stale:
            print(f"CRDs out of date (run `make manifests`): {', '.join(stale)}", file=sys.stderr)
            return 1
        return 0
    for name, text in rendered.items():
        (out / name).write_text(text)
        print(f"wrote {out / name}")
    return 0


def _render(args: argparse.Namespace) -> int:
    from trtllm_operator.render.cli import run_render

    return run_render(args.file, args.nodes, sys.stdout)


def _run(args: argparse.Namespace) -> int:
    from trtllm_operator.operator_main import run_operator

    return run_operator(
        namespaces=tuple(args.namespace or ()),
        health_addr=args.health_addr,
        metrics_addr=args.metrics_addr,
        verbose=args.verbose,
        prometheus_url=args.prometheus_url,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trtllm-operator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the operator against the current kubeconfig (or in-cluster)")
    run.add_argument("-n", "--namespace", action="append", help="watch only these namespaces (default: all)")
    run.add_argument(
        "--health-addr", default=None, help="serve /healthz and /readyz (caches synced) here, e.g. :8080"
    )
    run.add_argument("--metrics-addr", default=None, help="serve Prometheus /metrics here, e.g. :8081")
    run.add_argument(
        "--prometheus-url",
        default=None,
        help="Prometheus HTTP API base URL for canary judgements (env TRTLLM_PROMETHEUS_URL; none: a "
        "canary fails closed)",
    )
    run.add_argument("-v", "--verbose", action="store_true")
    run.set_defaults(func=_run)

    crds = sub.add_parser("crds", help="generate crds/*.yaml from the API models")
    crds.add_argument("-o", "--output", default="crds")
    crds.add_argument(
        "--check", action="store_true", help="fail if the files differ from what the models generate"
    )
    crds.set_defaults(func=_crds)

    render = sub.add_parser("render", help="print every object the operator would create for a TRTEngine")
    render.add_argument("-f", "--file", required=True, help="TRTEngine YAML")
    render.add_argument(
        "--nodes", default=None, help="`kubectl get nodes -o yaml` output (default: the simulated fleet)"
    )
    render.set_defaults(func=_render)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
