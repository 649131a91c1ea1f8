"""deploy/k8s: schema-valid manifests whose ports, probes, shutdown timing and metrics agree with the image and the service."""

from __future__ import annotations

from typing import Any

import pytest

from .helpers import (
    K8S,
    SERVICE_PORT,
    env_pairs,
    k8s_object,
    k8s_resources,
    load_yaml_documents,
    promql_selectors,
)

#: Kinds that the built-in schemas do not cover (CRDs); checked field by field below.
CRD_KINDS = {"ServiceMonitor"}


@pytest.fixture(scope="module")
def deployment() -> dict[str, Any]:
    return k8s_object("Deployment")


@pytest.fixture(scope="module")
def container(deployment) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(container) -> dict[str, Any]:
    return {e["name"]: e for e in container.get("env", [])}


def test_manifests_match_kubernetes_schemas():
    """Strict validation (unknown fields are errors) against the newest bundled Kubernetes API schemas."""
    kv = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate (see the 'test' extra)")
    version = kv.latest_version()
    resources = k8s_resources()
    assert {doc["kind"] for _, doc in resources} >= {"Namespace", "Deployment", "Service", "HorizontalPodAutoscaler"}
    for path, doc in resources:
        if doc["kind"] in CRD_KINDS:
            continue
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as exc:
            pytest.fail(f"{path.relative_to(K8S)} {doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")


def test_kustomizations_list_existing_files():
    for kustomization in K8S.rglob("kustomization.yaml"):
        doc = load_yaml_documents(kustomization)[0]
        for resource in doc["resources"]:
            assert (kustomization.parent / resource).exists(), f"{kustomization}: {resource} missing"
    base = load_yaml_documents(K8S / "kustomization.yaml")[0]
    # The image kustomize rewrites must be the one the Deployment uses.
    image = k8s_object("Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.split(":")[0] in {i["name"] for i in base["images"]}


def test_container_port_and_probes(container):
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": SERVICE_PORT}

    def probe_target(probe: str) -> tuple[str, int]:
        get = container[probe]["httpGet"]
        port = get["port"]
        return get["path"], ports[port] if isinstance(port, str) else port

    assert probe_target("readinessProbe") == ("/readyz", SERVICE_PORT)
    assert probe_target("livenessProbe") == ("/healthz", SERVICE_PORT)
    assert probe_target("startupProbe")[1] == SERVICE_PORT
    # The startup probe must allow as long as the image's HEALTHCHECK start period.
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120


def test_container_runs_the_image_command(container):
    """No command/args override: Kubernetes runs the image's `python -m service --host 0.0.0.0 --port 8000`."""
    assert "command" not in container and "args" not in container


def test_gpu_resources(container):
    res = container["resources"]
    assert int(res["limits"]["nvidia.com/gpu"]) == 1
    assert res["requests"].get("nvidia.com/gpu", res["limits"]["nvidia.com/gpu"]) == res["limits"]["nvidia.com/gpu"]
    assert "cpu" in res["requests"] and "memory" in res["requests"] and "memory" in res["limits"]
    assert env_of(container)["FERSNET_DEVICE"]["value"] == "cuda"


def test_non_root_and_locked_down(deployment, container, runtime_stage):
    pod_sc = deployment["spec"]["template"]["spec"]["securityContext"]
    user = runtime_stage.last("USER").args.split(":")[0]
    assert pod_sc["runAsNonRoot"] is True and str(pod_sc["runAsUser"]) == user
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
    if sc.get("readOnlyRootFilesystem"):
        mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
        assert "/tmp" in mounts, "a read-only root needs a writable /tmp (the image's caches live there)"


def test_termination_grace_outlasts_drain(deployment, container, runtime_stage):
    image_env = {k: v for e in runtime_stage.all("ENV") for k, v in env_pairs(e).items()}
    env = env_of(container)
    shutdown = float(env["FERSNET_SHUTDOWN_TIMEOUT_S"]["value"] if "FERSNET_SHUTDOWN_TIMEOUT_S" in env else image_env["FERSNET_SHUTDOWN_TIMEOUT_S"])
    pre_stop = container.get("lifecycle", {}).get("preStop", {})
    delay = 0.0
    if "exec" in pre_stop:
        cmd = pre_stop["exec"]["command"]
        assert cmd[0] == "sleep"
        delay = float(cmd[1])
    elif "sleep" in pre_stop:
        delay = float(pre_stop["sleep"]["seconds"])
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= delay + shutdown + 5, f"terminationGracePeriodSeconds {grace} < preStop {delay} + drain {shutdown} + 5"


def test_service_routes_to_the_container_port(deployment):
    service = k8s_object("Service")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert port["name"] == "http" and port["targetPort"] in ("http", SERVICE_PORT)


def test_pod_scrape_annotations(deployment):
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(SERVICE_PORT)
    assert annotations["prometheus.io/path"] == "/metrics"


def test_service_monitor_scrapes_the_service_port():
    monitor = k8s_object("ServiceMonitor")
    service = k8s_object("Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"


def test_plain_prometheus_scrape_config_sets_adapter_labels():
    config = load_yaml_documents(K8S / "monitoring" / "prometheus-scrape-config.yaml")[0]
    (job,) = config["scrape_configs"]
    targets = {r.get("target_label") for r in job["relabel_configs"]}
    assert {"__metrics_path__", "__address__", "namespace", "pod"} <= targets


def test_hpa_scales_the_deployment_on_exported_metrics(deployment, service_metrics):
    hpa = k8s_object("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["kind"], ref["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    custom = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    for name in custom:
        assert name in service_metrics, f"HPA metric {name} is not exported by the service"

    # Each custom metric needs a Prometheus Adapter rule that publishes it under that name.
    values = load_yaml_documents(K8S / "monitoring" / "prometheus-adapter-values.yaml")[0]
    rules = values["rules"]["custom"]
    published = {rule["name"]["as"] for rule in rules}
    assert set(custom) <= published
    for rule in rules:
        selectors, _ = promql_selectors(rule["seriesQuery"])
        assert all(s.metric in service_metrics for s in selectors)
        assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}
