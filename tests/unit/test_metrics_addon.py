"""The metrics add-on's scrape configuration (pure) and the add-on registry."""

from __future__ import annotations

import pytest

from trtllm_operator.dev import addons
from trtllm_operator.dev.addons.metrics import scrape_config


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
