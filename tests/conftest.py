"""Shared fixtures: paths of the repository and of Picsart's contract (shared/picsart beside the repo)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
PICSART_CONTRACT = REPOSITORY_ROOT.parent / "shared" / "picsart"


@pytest.fixture(scope="session")
def repository_root() -> Path:
    return REPOSITORY_ROOT
