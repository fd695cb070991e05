"""The router deploy against a real lab router over SSH, via the pyinfra CLI, twice.

The second run must report zero changes. Needs the lab (`python -m lab up`);
under CI the lab is brought up, elsewhere the test skips when it is not running.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ops_harness import require

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DEPLOY = Path(__file__).with_name("router_deploy.py")


def lab_info():
    from lab import api
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return api.ensure_up()
    require(api.is_running(), "the lab is not running (python -m lab up)")
    return api.ensure_up()


def pyinfra(sites: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, SITES=str(sites), PYTHONPATH=str(ROOT))
    try:
        # the `pyinfra` script, not `python -m pyinfra`: the latter imports paramiko before gevent
        # patches it and then never connects through a ProxyCommand
        script = str(Path(sys.executable).with_name("pyinfra"))
        return subprocess.run([script, "-y", "inventory.py", str(DEPLOY),
                               "--limit", "a-router", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=300)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"")[-2000:] if isinstance(e.stdout, bytes) else (e.stdout or "")[-2000:]
        pytest.fail(f"pyinfra did not finish in 300s (stuck connecting?): {out!r}")


def changes(payload: dict) -> list[str]:
    """Names of operations that would change a host, from `pyinfra --dry --json` ({"plan": [...]})."""
    return [op["name"] for op in payload["plan"]
            if op["hosts_with_change"] or op["hosts_with_conditional_change"]]


def test_router_deploy_twice_second_is_a_noop():
    info = lab_info()
    first = pyinfra(info.sites_file)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    key = Path(os.environ.get("S2S_AUTH_KEY_FILE", ROOT / ".lab/secrets/tailnet-auth-key"))
    if key.exists():
        assert key.read_text().strip() not in first.stdout + first.stderr
    second = pyinfra(info.sites_file, "--dry", "--json")
    assert second.returncode == 0, second.stderr[-3000:]
    payload = json.loads(second.stdout)
    names = " ".join(op["name"] for op in payload["plan"])
    for step in ("Install Tailscale", "Enable IPv4 and IPv6 forwarding", "Join the tailnet",
                 "Clamp TCP MSS", "UDP GRO forwarding"):
        assert step in names, names  # the router ops were planned at all
    assert changes(payload) == []
    if key.exists():
        assert key.read_text().strip() not in second.stdout
