"""`python -m trtllm_operator.dev cluster up|down|status` and `fleet` — the dev cluster's command line."""

from __future__ import annotations

import argparse
import sys

import yaml

from trtllm_operator.dev import addons
from trtllm_operator.dev.cluster import ClusterError, LocalCluster
from trtllm_operator.dev.fleet import fleet_nodes, generate_fleet, resolve_fleet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trtllm_operator.dev", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    cluster = sub.add_parser("cluster", help="start/stop the local control plane with a simulated GPU fleet")
    cluster.add_argument("action", choices=["up", "down", "status"])
    cluster.add_argument(
        "--fleet", default="default", help="builtin fleet name (default, a100-only) or a fleet YAML"
    )
    cluster.add_argument(
        "--addons", default="", help="also start these add-ons, comma-separated (metrics, lws)"
    )
    sub.add_parser("demo", help="the whole pass end to end on the local cluster (make demo)")
    fleet = sub.add_parser("fleet", help="print a fleet's Node objects as YAML")
    fleet.add_argument("--fleet", default="default")
    fleet.add_argument("--generate", type=int, metavar="N", help="generate a mixed fleet of N nodes instead")
    args = parser.parse_args(argv)

    if args.command == "demo":
        from trtllm_operator.dev.demo import main as demo

        return demo()
    if args.command == "fleet":
        chosen = generate_fleet(args.generate) if args.generate else resolve_fleet(args.fleet)
        yaml.safe_dump_all(fleet_nodes(chosen, ready=True), sys.stdout, sort_keys=False)
        return 0
    local = LocalCluster()
    try:
        if args.action == "up":
            local.up(resolve_fleet(args.fleet))
            local.ensure_addons(*addons.parse(args.addons))
        elif args.action == "down":
            local.down()
        else:
            healthy = local.healthy()
            print(
                f"{'healthy' if healthy else 'not running'}: {local.server} (KUBECONFIG={local.kubeconfig})"
            )
            return 0 if healthy else 1
    except (ClusterError, ValueError) as error:
        print(f"cluster error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
