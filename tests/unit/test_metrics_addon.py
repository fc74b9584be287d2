"""The metrics add-on's scrape configuration (pure) and the add-on registry."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from trtllm_operator.dev import addons
from trtllm_operator.dev.addons.metrics import ADAPTER_RULES, scrape_config
from trtllm_operator.dev.cluster import REPO_ROOT


def _targets(config: dict[str, object]) -> dict[str, list[str]]:
    rules = config["relabel_configs"]
    assert isinstance(rules, list)
    return {r["target_label"]: r["source_labels"] for r in rules if "target_label" in r}


def test_scrape_config_gives_the_agreed_labels() -> None:
    targets = _targets(scrape_config(simulated=False))
    assert targets == {
        "namespace": ["__meta_kubernetes_namespace"],
        "pod": ["__meta_kubernetes_pod_name"],
        "inference_service": ["__meta_kubernetes_pod_label_trtllm_dev_inference_service"],
        "engine": ["__meta_kubernetes_pod_label_trtllm_dev_engine"],
        "revision": ["__meta_kubernetes_pod_label_trtllm_dev_revision"],
        "track": ["__meta_kubernetes_pod_label_trtllm_dev_track"],
    }


def test_only_the_simulation_rewrites_the_address_to_the_loopback_annotation() -> None:
    sim = _targets(scrape_config(simulated=True))
    assert sim["__address__"] == ["__meta_kubernetes_pod_annotation_sim_trtllm_dev_loopback"]
    assert "__address__" not in _targets(scrape_config(simulated=False))


def test_scrape_config_keeps_serving_pods_http_port_and_metrics_path() -> None:
    config = scrape_config(simulated=False)
    assert config["metrics_path"] == "/prometheus/metrics"
    assert config["scrape_interval"] == "2s"
    keeps = {
        tuple(r["source_labels"]): r["regex"] for r in config["relabel_configs"] if r.get("action") == "keep"
    }
    assert keeps[("__meta_kubernetes_pod_label_trtllm_dev_component",)] == "server"
    assert keeps[("__meta_kubernetes_pod_container_port_name",)] == "http"


def test_registry_names_and_parse() -> None:
    assert "metrics" in addons.names()
    assert addons.parse(" metrics, ,lws") == ["metrics", "lws"]
    with pytest.raises(ValueError, match="unknown cluster add-on"):
        addons.get("nope")


# ------------------------------------------------------------------ what a real cluster installs
FILES = REPO_ROOT / "charts" / "trtllm-operator" / "files" / "prometheus"
HEADER = (
    "# Generated from operator/trtllm_operator/dev/addons/metrics.py ({}); docs/metrics.md says how to "
    "use it.\n"
)


def real_cluster_files() -> dict[Path, str]:
    """The scrape job without the simulation's loopback trick, and the Prometheus Adapter rules."""
    scrape = {"scrape_configs": [scrape_config(simulated=False)]}
    return {
        FILES / "scrape-config.yaml": HEADER.format("scrape_config(simulated=False)")
        + yaml.safe_dump(scrape, sort_keys=False),
        FILES / "prometheus-adapter-rules.yaml": HEADER.format("ADAPTER_RULES")
        + yaml.safe_dump({"rules": ADAPTER_RULES}, sort_keys=False),
    }


def test_committed_real_cluster_files_equal_the_local_clusters_config() -> None:
    for path, text in real_cluster_files().items():
        assert path.read_text() == text, f"{path} is stale: python -m tests.unit.test_metrics_addon --write"


def test_chart_pod_monitor_gives_the_same_labels() -> None:
    from tests.unit.test_chart import helm_template, one

    assert not [o for o in helm_template() if o["kind"] == "PodMonitor"]
    monitor = one(helm_template("--set", "servingMetrics.podMonitor.enabled=true"), "PodMonitor")
    assert monitor["spec"]["selector"] == {"matchLabels": {"trtllm.dev/component": "server"}}
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/prometheus/metrics")
    relabel = {r["targetLabel"]: r["sourceLabels"] for r in endpoint["relabelings"]}
    assert relabel == _targets(scrape_config(simulated=False))


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--write"]:
        FILES.mkdir(parents=True, exist_ok=True)
        for path, text in real_cluster_files().items():
            path.write_text(text)
            print(f"wrote {path}")
