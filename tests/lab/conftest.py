"""Session fixture: the built-in lab, booted once per test session and torn down at its end.

Other areas that need the lab call `lab.api.ensure_up()` (idempotent: it reuses
a running lab) from their own session fixture, or use `lab_session()` below.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lab import api
from lab.prereq import DEBIAN_PACKAGES, missing_prerequisites
from lab.topology import DEFAULT_PATH
from tests.support import need


def require_lab() -> None:
    """Skip with the reason when the lab cannot run here (a failure under CI: tests/conftest.py)."""
    missing = missing_prerequisites()
    need(f"the lab needs {', '.join(missing)} (apt-get install {' '.join(DEBIAN_PACKAGES)}; run as root)"
         if missing else None)


def lab_session() -> Iterator[api.LabInfo]:
    """Generator for a session fixture: up (or reuse) the lab, yield its info, take it down."""
    require_lab()
    info = api.ensure_up(DEFAULT_PATH)  # the tests know the built-in lab's addresses
    try:
        yield info
    finally:
        api.down()


@pytest.fixture(scope="session")
def lab() -> Iterator[api.LabInfo]:
    yield from lab_session()
