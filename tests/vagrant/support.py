"""Helpers shared by the Vagrant lab tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def require(ok: bool, why: str) -> None:
    """Skip outside CI (saying why); fail loudly under CI=true."""
    if ok:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"prerequisite missing under CI: {why}")
    pytest.skip(why)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
