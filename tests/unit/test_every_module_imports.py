"""Every product module imports: a module only an opt-in suite loads (lab.box, the Vagrant lab) must not rot unseen."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = sorted(p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name not in ("tests",))
SENT_AS_SCRIPTS = {"check.dhcp_probe_remote"}  # runs on a LAN host (stdin of python3 over SSH), not imported
MODULES = sorted(m.name for pkg in PACKAGES
                 for m in pkgutil.walk_packages([str(ROOT / pkg)], prefix=f"{pkg}.")
                 if not m.name.endswith("__main__") and m.name not in SENT_AS_SCRIPTS)


def test_the_product_packages_are_found() -> None:
    assert {"lab", "sites", "dhcp", "operations", "steps"} <= set(PACKAGES)
    assert "lab.box" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_module_imports(name: str) -> None:
    importlib.import_module(name)
