"""docker-compose.yml (+ docker-compose.cpu.yml): valid Compose, GPU reserved, health-checked, and wired to Prometheus and Grafana."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest

from .helpers import (
    COMPOSE,
    COMPOSE_CPU,
    ROOT,
    SERVICE_PORT,
    duration_s,
    env_pairs,
    exec_form,
    interpolate,
    load_yaml_documents,
    merge_compose,
    parse_flags,
    strip_resets,
)

SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def assert_valid(validator, document, what: str) -> None:
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, f"{what}:\n" + "\n".join(f"  {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_compose_files_match_the_compose_spec(validator, compose, compose_cpu):
    assert_valid(validator, strip_resets(compose), COMPOSE.name)
    assert_valid(validator, strip_resets(compose_cpu), COMPOSE_CPU.name)
    assert_valid(validator, merge_compose(compose, compose_cpu), f"{COMPOSE.name} + {COMPOSE_CPU.name}")
    # Interpolated with an empty environment (every ${VAR:-default} at its default).
    assert_valid(validator, interpolate(merge_compose(compose, compose_cpu)), "interpolated")


def compose_command() -> list[str] | None:
    """A real Compose v2 implementation, when this machine has one (CI need not)."""
    candidates = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    for cmd in candidates:
        try:
            out = subprocess.run([*cmd, "version", "--short"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and out.stdout.strip().lstrip("v").split(".")[0] == "2":
            return cmd
    return None


@pytest.mark.parametrize("files", [[COMPOSE], [COMPOSE, COMPOSE_CPU]], ids=["gpu", "cpu"])
def test_docker_compose_config(files):
    """`docker compose config` parses, merges and validates offline (no daemon needed)."""
    cmd = compose_command()
    if cmd is None:
        pytest.skip("no Docker Compose v2 on this machine; the schema check above still ran")
    args = [*cmd, "--project-directory", str(ROOT)]
    for f in files:
        args += ["-f", str(f)]
    result = subprocess.run([*args, "config", "--quiet"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_whole_stack_in_one_file(compose):
    assert {"fersnet", "prometheus", "grafana"} <= set(compose["services"])
    for name, svc in compose["services"].items():
        assert "profiles" not in svc, f"{name}: `docker compose up` must start every service"
        image = svc["image"]
        if name != "fersnet":
            tag = image.rsplit(":", 1)[-1]
            assert ":" in image and tag not in {"latest", ""}, f"{name}: pin the image tag"


def test_service_builds_the_gpu_image(compose):
    svc = compose["services"]["fersnet"]
    assert svc["build"]["context"] == "."
    assert (ROOT / svc["build"]["dockerfile"]).resolve() == (ROOT / "docker" / "Dockerfile").resolve()
    assert svc["build"]["args"]["VARIANT"] == "cuda"
    assert svc["ports"] == [f"${{FERSNET_HTTP_PORT:-{SERVICE_PORT}}}:{SERVICE_PORT}"]


def test_gpu_is_reserved(compose):
    devices = compose["services"]["fersnet"]["deploy"]["resources"]["reservations"]["devices"]
    assert len(devices) == 1
    device = devices[0]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert device.get("count", 1) in (1, "all") or "device_ids" in device


def test_cpu_override_drops_the_gpu(compose, compose_cpu):
    merged = merge_compose(compose, compose_cpu)["services"]["fersnet"]
    assert not merged.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices")
    assert merged["build"]["args"]["VARIANT"] == "cpu"
    assert merged["image"] != compose["services"]["fersnet"]["image"], "GPU and CPU images need different tags"
    assert interpolate(merged["environment"])["FERSNET_DEVICE"] == "cpu"
    assert interpolate(compose["services"]["fersnet"]["environment"])["FERSNET_DEVICE"] == "cuda"


def test_healthcheck_matches_the_image(compose, runtime_stage):
    """Compose repeats the image's HEALTHCHECK (for visibility); the two must not drift apart."""
    hc = compose["services"]["fersnet"]["healthcheck"]
    ins = runtime_stage.last("HEALTHCHECK")
    flags, rest = parse_flags(ins.args)
    image_cmd = exec_form(type(ins)("CMD", rest[4:].strip(), ins.line))
    assert hc["test"] == ["CMD", *image_cmd]
    for key in ("interval", "timeout", "start-period", "start-interval"):
        if key in flags:
            assert duration_s(hc[key.replace("-", "_")]) == duration_s(flags[key]), key
    assert int(hc["retries"]) == int(flags.get("retries", 3))


def test_stop_grace_period_outlasts_graceful_shutdown(compose, runtime_stage):
    image_env = {k: v for e in runtime_stage.all("ENV") for k, v in env_pairs(e).items()}
    svc = compose["services"]["fersnet"]
    env = interpolate(svc["environment"])
    shutdown = float(env.get("FERSNET_SHUTDOWN_TIMEOUT_S") or image_env["FERSNET_SHUTDOWN_TIMEOUT_S"])
    # The drain must finish (plus a few seconds to exit) before compose sends SIGKILL.
    assert duration_s(svc["stop_grace_period"]) >= shutdown + 5


def test_prometheus_and_grafana_mounts_exist(compose):
    for name in ("prometheus", "grafana"):
        for volume in compose["services"][name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: mounts {source}, which does not exist"
    prometheus_cfg = [v for v in compose["services"]["prometheus"]["volumes"] if v.startswith("./docker/prometheus/")]
    assert prometheus_cfg and prometheus_cfg[0].split(":")[1] == "/etc/prometheus/prometheus.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in compose["services"]["prometheus"]["command"]


def grafana_mount(compose, source: str) -> str:
    for volume in compose["services"]["grafana"]["volumes"]:
        parts = volume.split(":")
        if parts[0].rstrip("/") == source:
            return parts[1]
    raise AssertionError(f"grafana does not mount {source}")


def test_grafana_provisioning_paths_line_up(compose):
    for kind in ("datasources", "dashboards"):
        assert grafana_mount(compose, f"./docker/grafana/provisioning/{kind}") == f"/etc/grafana/provisioning/{kind}"
    dashboards_dir = grafana_mount(compose, "./docker/grafana/dashboards")
    providers = [p for f in (ROOT / "docker/grafana/provisioning/dashboards").glob("*.y*ml") for p in load_yaml_documents(f)[0]["providers"]]
    assert providers and all(p["options"]["path"] == dashboards_dir for p in providers)
    home = compose["services"]["grafana"]["environment"].get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        assert home.startswith(dashboards_dir + "/") and (ROOT / "docker/grafana/dashboards" / Path(home).name).exists()
