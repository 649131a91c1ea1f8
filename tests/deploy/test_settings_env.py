"""Every FERSNET_* variable the deployment files set is one service/settings.py actually reads."""

from __future__ import annotations

import re

import pytest

from .helpers import COMPOSE, COMPOSE_CPU, DOCKERFILE, DOCS, K8S, ROOT

FERSNET_VAR = re.compile(r"\bFERSNET_[A-Z0-9_]+\b")
#: Variables of the compose files themselves (host port, image tag), not of the service.
COMPOSE_ONLY = {"FERSNET_HTTP_PORT"}


def variables_in(path) -> set[str]:
    return set(FERSNET_VAR.findall(path.read_text()))


@pytest.mark.parametrize(
    "path",
    [DOCKERFILE, COMPOSE, COMPOSE_CPU, *sorted(K8S.rglob("*.yaml")), DOCS, ROOT / "deploy" / "README.md"],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_fersnet_variables_are_settings_fields(path, settings_fields):
    if not path.exists():
        pytest.skip(f"{path.relative_to(ROOT)} does not exist")
    unknown = variables_in(path) - settings_fields - COMPOSE_ONLY
    assert not unknown, f"{path.relative_to(ROOT)} uses {sorted(unknown)}, which service/settings.py does not define"


def test_compose_only_variables_are_not_settings(settings_fields):
    """If the service ever reads one of these, compose's use of it would change meaning."""
    assert not COMPOSE_ONLY & settings_fields


def test_the_deployment_table_has_a_row_for_every_setting(settings_fields):
    """docs/deployment.md's table is where an operator looks a variable up: a setting without a row is unknown to them."""
    rows = {name for line in DOCS.read_text().splitlines() if line.startswith("| `FERSNET_") for name in FERSNET_VAR.findall(line.split("|")[1])}
    assert settings_fields <= rows, f"no row in docs/deployment.md for {sorted(settings_fields - rows)}"


def test_compose_passes_every_setting_through(settings_fields):
    """Set in .env or the shell, a variable compose does not list never reaches the container. The image fixes where
    the service listens (host and port); compose publishes it with its own FERSNET_HTTP_PORT."""
    listed = set(re.findall(r"^\s+(FERSNET_[A-Z0-9_]+):", COMPOSE.read_text(), flags=re.MULTILINE))
    missing = settings_fields - listed - {"FERSNET_HOST", "FERSNET_PORT"}
    assert not missing, f"docker-compose.yml does not pass {sorted(missing)} through"
