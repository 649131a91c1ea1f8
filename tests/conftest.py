"""Fixtures every test suite may use.

Real datasets live beside the repository in ``../shared/data`` (never inside
it: their licences forbid redistribution). Tests that read them are marked
``@pytest.mark.realdata`` and skip cleanly where the folder is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

#: The fake datasets and tiny checkpoints (``fer2013_folder``, ``make_checkpoint``, ...): defined once, for every suite.
pytest_plugins = ["tests.shared_fixtures"]

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO_ROOT / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (skips the test where it is absent)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not available at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def fer2013_test(shared_data: Path) -> Path:
    """FER2013's test split: ``<class>/{PublicTest,PrivateTest}_*.jpg``, 48x48 grey faces."""
    folder = shared_data / "fer2013" / "test"
    if not folder.is_dir():
        pytest.skip(f"FER2013 test split not available at {folder}")
    return folder
