from __future__ import annotations

from typing import Any

import pytest

from .helpers import COMPOSE, COMPOSE_CPU, dockerfile_stages, load_compose


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    return load_compose(COMPOSE)


@pytest.fixture(scope="session")
def compose_cpu() -> dict[str, Any]:
    return load_compose(COMPOSE_CPU)


@pytest.fixture(scope="session")
def stages():
    """(global ARG defaults, stages) of docker/Dockerfile."""
    return dockerfile_stages()


@pytest.fixture(scope="session")
def runtime_stage(stages):
    """The stage `docker build` produces by default: the last one."""
    return stages[1][-1]


@pytest.fixture(scope="session")
def service_metrics() -> dict[str, dict[str, Any]]:
    """What service/metrics.py exports: exposed name -> {type, labels, histogram}."""
    metrics_mod = pytest.importorskip("service.metrics", reason="service/metrics.py is not importable")
    from prometheus_client.metrics import MetricWrapperBase

    out: dict[str, dict[str, Any]] = {}
    for metric in vars(metrics_mod.ServiceMetrics()).values():
        if isinstance(metric, MetricWrapperBase):
            name = metric._name + ("_total" if metric._type == "counter" else "")
            out[name] = {"type": metric._type, "labels": set(metric._labelnames)}
    # The registry and the published list must agree, or the checks below test the wrong thing.
    assert set(out) == set(metrics_mod.EXPORTED_NAMES)
    return out


@pytest.fixture(scope="session")
def settings_fields() -> set[str]:
    """FERSNET_* environment variable names that service/settings.py reads."""
    settings_mod = pytest.importorskip("service.settings", reason="service/settings.py does not exist yet")
    cls = settings_mod.Settings
    prefix = cls.model_config.get("env_prefix", "")
    return {(prefix + name).upper() for name in cls.model_fields}
