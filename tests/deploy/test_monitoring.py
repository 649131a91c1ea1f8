"""Prometheus and Grafana configuration: scrape the service where it listens, and query only metrics it exports."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .helpers import (
    GRAFANA,
    PROMETHEUS,
    SERVICE_PORT,
    base_metric,
    duration_s,
    load_yaml_documents,
    promql_selectors,
)

DASHBOARD = GRAFANA / "dashboards" / "fersnet.json"
#: Labels Prometheus itself attaches to every scraped series (plus Kubernetes' namespace/pod).
TARGET_LABELS = {"instance", "job", "service", "namespace", "pod"}


@pytest.fixture(scope="module")
def prometheus() -> dict[str, Any]:
    return load_yaml_documents(PROMETHEUS)[0]


@pytest.fixture(scope="module")
def datasource() -> dict[str, Any]:
    sources = [d for f in (GRAFANA / "provisioning" / "datasources").glob("*.y*ml") for d in load_yaml_documents(f)[0]["datasources"]]
    assert len(sources) == 1 and sources[0]["type"] == "prometheus"
    return sources[0]


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels(dashboard) -> list[dict[str, Any]]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # collapsed rows keep their panels inside
    return out


def dashboard_queries(dashboard) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable."""
    queries = [(p["title"], t["expr"]) for p in panels(dashboard) for t in p.get("targets", []) if t.get("expr")]
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            q = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            if q.startswith("label_values("):
                inner = q[len("label_values(") : -1]
                selector = inner.rsplit(",", 1)[0] if "," in inner else inner
                queries.append((f"variable {var['name']}", selector))
            else:
                queries.append((f"variable {var['name']}", q))
    return queries


# --------------------------------------------------------------------- Prometheus


def test_prometheus_scrapes_the_service(prometheus, compose):
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    job = jobs["fersnet"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == [f"fersnet:{SERVICE_PORT}"]
    host = targets[0].split(":")[0]
    assert host in compose["services"], "the scrape target must be the compose service's name"


def test_prometheus_intervals(prometheus, datasource):
    g = prometheus["global"]
    assert duration_s(g["scrape_timeout"]) < duration_s(g["scrape_interval"])
    # Grafana's $__rate_interval assumes this scrape interval.
    assert duration_s(datasource["jsonData"]["timeInterval"]) == duration_s(g["scrape_interval"])


# --------------------------------------------------------------------- Grafana


def test_datasource_points_at_compose_prometheus(datasource, compose):
    assert datasource["url"] == "http://prometheus:9090"
    assert "prometheus" in compose["services"]
    assert datasource["uid"] and datasource.get("isDefault") is True


def test_dashboard_uses_the_provisioned_datasource(dashboard, datasource):
    for p in panels(dashboard):
        for thing in [p, *p.get("targets", [])]:
            ds = thing.get("datasource")
            if ds is not None:
                assert ds == {"type": "prometheus", "uid": datasource["uid"]}, f"panel {p['title']!r}: unknown datasource {ds}"


def test_dashboard_basics(dashboard):
    assert dashboard["uid"] and dashboard["title"]
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in panels(dashboard):
        if p["type"] != "row":
            assert p.get("targets"), f"panel {p['title']!r} has no query"
            for t in p["targets"]:
                assert t.get("refId"), f"panel {p['title']!r}: target without refId"


def test_dashboard_queries_only_exported_metrics(dashboard, service_metrics):
    histograms = {n for n, m in service_metrics.items() if m["type"] == "histogram"}
    queries = dashboard_queries(dashboard)
    assert queries
    for where, expr in queries:
        selectors, groupings = promql_selectors(expr)
        assert selectors, f"{where}: no metric in {expr!r}"
        labels_here: set[str] = set(TARGET_LABELS)
        for sel in selectors:
            name = base_metric(sel.metric, histograms)
            assert name in service_metrics, f"{where}: {sel.metric!r} is not exported by service/metrics.py"
            meta = service_metrics[name]
            if sel.metric != name:
                assert meta["type"] == "histogram", f"{where}: {sel.metric} on a {meta['type']}"
            known = meta["labels"] | TARGET_LABELS | ({"le"} if sel.metric.endswith("_bucket") else set())
            unknown = set(sel.labels) - known
            assert not unknown, f"{where}: {sel.metric} has no label(s) {sorted(unknown)}"
            labels_here |= known
        unknown = set(groupings) - labels_here
        assert not unknown, f"{where}: grouping by unknown label(s) {sorted(unknown)} in {expr!r}"
        if "histogram_quantile" in expr:
            assert any(s.metric.endswith("_bucket") for s in selectors) and "le" in groupings, (
                f"{where}: histogram_quantile needs _bucket series aggregated by le"
            )


def test_dashboard_covers_what_operators_watch(dashboard, service_metrics):
    """Throughput, latency percentiles, batch sizes, queue depth, errors by status, GPU memory, and admission:
    refusals by reason, requests in flight and the pixel budget in use."""
    exprs = " ".join(expr for _, expr in dashboard_queries(dashboard))
    for metric in ("fersnet_requests_total", "fersnet_images_total", "fersnet_request_latency_seconds_bucket",
                   "fersnet_batch_size_bucket", "fersnet_queue_depth", "fersnet_gpu_memory_bytes", "fersnet_ready",
                   "fersnet_refused_total", "fersnet_inflight_requests", "fersnet_decoded_pixels"):
        assert metric in exprs, f"the dashboard does not show {metric}"
    assert "histogram_quantile(0.99" in exprs and "histogram_quantile(0.5" in exprs
    assert any("by (status)" in expr for _, expr in dashboard_queries(dashboard)), "no error rate by status"
    assert any("by (reason)" in expr for _, expr in dashboard_queries(dashboard)), "no refusals by reason"
