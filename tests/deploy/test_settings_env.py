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
