"""Suite-wide rules: real-component tests may never be skipped in CI.

This hook is the only CI rule: harnesses skip with tests.support.need(reason)
and never check CI themselves.
"""

from __future__ import annotations

import pytest

from tests.support import IN_CI


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Outside CI a missing prerequisite may skip an integration test (with its reason);
    in CI the same skip is a failure, so CI can never pass without the real programs."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and item.get_closest_marker("integration") is not None:
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = f"integration test skipped in CI (not allowed): {reason}"
