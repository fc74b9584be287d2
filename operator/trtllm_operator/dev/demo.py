"""`make demo`: the whole optimization pass on the local GPU-simulating cluster, end to end.

Starts (or reuses) the local control plane with the default simulated fleet, installs the CRDs, runs
the operator, applies the samples in ``manifests/demo/`` and narrates what happens: placement by
compute capability, tuned build commands, builds run by the real builder against the TensorRT-LLM
stand-ins, gates with numbers, a calibration-domain warning turned into an accuracy regression, an
admission rejection, and an InferenceService pinned to the engine's architecture. The cluster stays
up afterwards so you can look around with kubectl.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from trtllm_operator.dev.cluster import REPO_ROOT, ClusterError, LocalCluster

DEMO = REPO_ROOT / "manifests" / "demo"
NAMESPACE = "trtllm-demo"
ENGINES = ("llama-70b-fp8", "llama-8b-int8sq", "coder-int4awq", "llama-8b-nvfp4")
_LLAMA3 = {"vocab_size": 128256, "num_key_value_heads": 8, "torch_dtype": "bfloat16"}
#: Stand-in checkpoints: only config.json, with the published shapes of each model, because the
#: simulated trtllm-bench sizes its roofline estimate from them (weights, KV cache per token).
MODELS: dict[str, dict[str, Any]] = {
    "llama-3.3-70b": _LLAMA3
    | {
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": 8192,
        "intermediate_size": 28672,
        "num_hidden_layers": 80,
        "num_attention_heads": 64,
    },
    "llama-3.1-8b": _LLAMA3
    | {
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
    },
    "qwen2.5-coder-7b": {
        "architectures": ["Qwen2ForCausalLM"],
        "torch_dtype": "bfloat16",
        "vocab_size": 152064,
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
    },
}


def benchmark_line(bench: dict[str, Any]) -> str:
    """One engine's benchmark as the demo prints it; a simulated figure says so, never passes as measured."""
    simulated = bool(bench.get("simulated"))
    figure = f"{'~' if simulated else ''}{bench['outputTokensPerSecond']:.0f} output tok/s"
    source = f"SIMULATED by {bench.get('tool')}, a roofline estimate" if simulated else bench.get("tool")
    return (
        f"benchmark: {figure} at ISL/OSL {bench['isl']}/{bench['osl']}, concurrency "
        f"{bench['concurrency']} (passed: {bench.get('passed')}; {source or 'trtllm-bench'})"
    )


def _say(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


class Demo:
    def __init__(self) -> None:
        self.cluster = LocalCluster()
        self.bin = Path(
            subprocess.run(
                ["bash", str(REPO_ROOT / "hack" / "build-binaries.sh")],
                check=True,
                stdout=subprocess.PIPE,
                text=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        self.env = {
            **os.environ,
            "KUBECONFIG": str(self.cluster.kubeconfig),
            "PATH": f"{self.bin}:{os.environ['PATH']}",
        }

    def kubectl(self, *args: str, check: bool = True, show: bool = True) -> subprocess.CompletedProcess[str]:
        if show:
            print(f"$ kubectl {' '.join(args)}", flush=True)
        result = subprocess.run(
            [str(self.bin / "kubectl"), *args], env=self.env, text=True, capture_output=True
        )
        if show:
            print((result.stdout + result.stderr).rstrip(), flush=True)
        if check and result.returncode != 0:
            raise SystemExit(f"kubectl {' '.join(args)} failed")
        return result

    def engine(self, name: str) -> dict[str, Any]:
        out = self.kubectl("get", "trte", name, "-n", NAMESPACE, "-o", "json", show=False, check=False).stdout
        return json.loads(out) if out else {}

    def condition(self, name: str, type_: str) -> dict[str, Any]:
        conditions = (self.engine(name).get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == type_), {})

    def wait(self, predicate: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(1)
        print(f"(gave up waiting for {what} after {timeout:.0f} s)")

    def _models_claim(self) -> dict[str, Any]:
        out = self.kubectl("get", "pvc", "models", "-n", NAMESPACE, "-o", "json", show=False).stdout
        claim: dict[str, Any] = json.loads(out)
        return claim

    def seed_models(self) -> None:
        """Tiny stand-in checkpoints and calibration text on the `models` volume (its hostPath in the sim)."""
        self.wait(lambda: self._models_claim()["spec"].get("volumeName"), 30, "models volume")
        volume = self._models_claim()["spec"]["volumeName"]
        pv = json.loads(self.kubectl("get", "pv", volume, "-o", "json", show=False).stdout)
        root = Path(pv["spec"]["hostPath"]["path"])
        for name, config in MODELS.items():
            (root / name).mkdir(parents=True, exist_ok=True)
            (root / name / "config.json").write_text(json.dumps(config))
        for domain, text in {
            "chat": "User: how do I reset my password?\nAssistant: Open settings.\n",
            "code": "def add(a, b):\n    return a + b\n",
        }.items():
            (root / "calib" / domain).mkdir(parents=True, exist_ok=True)
            for index in range(8):
                (root / "calib" / domain / f"{index}.txt").write_text(text * (index + 1))
        print(f"seeded {len(MODELS)} model checkpoints and calibration text under {root}")

    def run(self) -> int:
        _say("1. A real control plane (etcd, kube-apiserver, controller-manager, scheduler) + KWOK GPU fleet")
        self.cluster.up()
        self.kubectl(
            "get",
            "nodes",
            "-L",
            "nvidia.com/gpu.product,nvidia.com/gpu.compute.major,"
            "nvidia.com/gpu.compute.minor,nvidia.com/gpu.count",
        )
        _say("2. CRDs (generated from the pydantic models)")
        self.kubectl("apply", "--server-side", "-f", str(REPO_ROOT / "crds"))
        self.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        _say("3. Offline render: what the operator would create for the worked example (GitOps review)")
        render = subprocess.run(
            [
                sys.executable,
                "-m",
                "trtllm_operator.cli",
                "render",
                "-f",
                str(DEMO / "10-llama-fp8-h100.yaml"),
            ],
            text=True,
            capture_output=True,
        )
        steps = [
            line for line in render.stdout.splitlines() if "trtllm-build" in line or "quantize.py" in line
        ]
        print("\n".join(line.strip() for line in steps[:2]))
        _say("4. The metrics add-on (real Prometheus + Prometheus Adapter) and the operator")
        try:
            self.cluster.ensure_addons("metrics")  # built on first use: about 7 minutes cold
        except ClusterError as error:
            print(f"demo: the metrics add-on could not start: {error}", file=sys.stderr)
            return 1
        print(f"Prometheus at {self.cluster.prometheus_url} (the operator judges canaries with it)")
        log_path = self.cluster.state_dir / "logs" / "operator-demo.log"
        operator = subprocess.Popen(
            [sys.executable, "-m", "trtllm_operator.cli", "run"],
            env={**self.env, "TRTLLM_PROMETHEUS_URL": self.cluster.prometheus_url},
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )
        print(f"operator pid {operator.pid}, log {log_path}")
        try:
            return self._scenario()
        finally:
            operator.terminate()
            operator.wait(15)

    def _scenario(self) -> int:
        self.kubectl("apply", "-f", str(DEMO / "00-namespace.yaml"))
        self.seed_models()
        _say("5. An impossible request is stopped at the door")
        self.kubectl("apply", "-f", str(DEMO / "90-rejected-fp8-on-a100.yaml"), check=False)
        _say("6. Four engines: FP8 on H100, INT8-SQ on A100, INT4-AWQ code model, NVFP4 anywhere")
        for name in (
            "10-llama-fp8-h100.yaml",
            "20-llama-int8sq-a100.yaml",
            "30-coder-mismatched-calibration.yaml",
            "40-nvfp4-anywhere.yaml",
            "50-inferenceservice.yaml",
        ):
            self.kubectl("apply", "-f", str(DEMO / name))
        self.wait(
            lambda: all(
                (self.engine(n).get("status") or {}).get("phase") in ("Ready", "Stalled") for n in ENGINES
            ),
            180,
            "builds",
        )
        self.kubectl("get", "trte,trtis", "-n", NAMESPACE, "-o", "wide")
        self.kubectl("get", "pods", "-n", NAMESPACE, "-o", "wide", "-l", "trtllm.dev/component=build")
        _say("7. Why each engine is where it is")
        for name in ENGINES:
            status = self.engine(name).get("status") or {}
            ready = self.condition(name, "Ready")
            print(
                f"- {name}: {status.get('phase')} on {(status.get('gpu') or {}).get('computeCapability')} "
                f"— {ready.get('reason')}: {ready.get('message', '')[:300]}"
            )
            for warning in ("CalibrationDomainMismatch", "InflightBatchingDisabled"):
                found = self.condition(name, warning)
                if found.get("status") == "True":
                    print(f"    warning {warning}: {found['message'][:300]}")
            bench = status.get("benchmark")
            if bench:
                print(f"    {benchmark_line(bench)}")
        _say("8. Serving: pods pinned to the architecture the engine was built on")
        self.wait(
            lambda: (
                "True"
                in self.kubectl(
                    "get",
                    "trtis",
                    "llama-70b",
                    "-n",
                    NAMESPACE,
                    "-o",
                    "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
                    show=False,
                    check=False,
                ).stdout
            ),
            90,
            "InferenceService Ready",
        )
        self.kubectl("get", "trtis", "-n", NAMESPACE)
        self.kubectl("get", "pods", "-n", NAMESPACE, "-o", "wide", "-l", "trtllm.dev/component=server")
        from trtllm_operator.dev.demo_autoscaling import autoscaling_step
        from trtllm_operator.dev.demo_canary import canary_steps

        scaled = autoscaling_step(self, _say)
        canaried = canary_steps(self, _say)
        _say("Done. The cluster keeps running:")
        print(
            f"  export KUBECONFIG={self.cluster.kubeconfig} PATH={self.bin}:$PATH\n"
            f"  kubectl get trte,trtis -n {NAMESPACE}; kubectl describe trte coder-int4awq -n {NAMESPACE}\n"
            f"  kubectl describe trtis chat -n {NAMESPACE}   # the canary's events and RolledBack message\n"
            "  make cluster-down   # stops exactly what make cluster-up started"
        )
        failed = [
            n
            for n in ("llama-70b-fp8", "llama-8b-int8sq", "llama-8b-nvfp4")
            if (self.engine(n).get("status") or {}).get("phase") != "Ready"
        ]
        if not scaled:
            print("demo: autoscaling did not scale 1 -> 3 -> 1", file=sys.stderr)
            return 1
        if not canaried:
            print(
                "demo: the canary did not end promoted, then rolled back with the stable kept",
                file=sys.stderr,
            )
            return 1
        if failed or self.condition("coder-int4awq", "Stalled").get("reason") != "AccuracyRegression":
            print(f"demo did not reach its expected end state: {failed or 'coder-int4awq'}", file=sys.stderr)
            return 1
        return 0


def main() -> int:
    return Demo().run()
