"""plan(settle=...): approvals of a router that just re-advertised are decided on what it now advertises.

A canned in-memory control server whose node list lags behind, as a real one does right
after `tailscale set --advertise-routes` (the lab counterpart is in test_headscale_real.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from controlplane import base
from controlplane.base import ControlPlane
from controlplane.model import Node, PolicyDoc
from sites import load_sites
from tests.controlplane.conftest import write_sites

OLD = Node("1", "rb", hostname="rb", advertised=("172.16.100.0/24",), approved=("172.16.100.0/24",))
NEW = Node("1", "rb", hostname="rb", advertised=("10.98.0.0/16", "172.16.100.0/24"), approved=("172.16.100.0/24",))


RA = Node("2", "ra", hostname="ra", advertised=("192.0.2.0/24",), approved=("192.0.2.0/24",))


class Lagging(ControlPlane):
    """Answers the old node list `lag` times, then the new one (site a's router settled all along)."""

    def __init__(self, lag: int) -> None:
        super().__init__()
        self.lag, self.calls = lag, 0

    def list_nodes(self) -> list[Node]:
        self.calls += 1
        return [RA, OLD if self.calls <= self.lag else NEW]

    def set_routes(self, node: Node, routes: Sequence[str]) -> None:
        raise AssertionError("plan must not write")

    def read_policy(self) -> PolicyDoc:
        raise AssertionError("routes only")

    def check_policy(self, text: str) -> None:
        raise AssertionError("routes only")

    def write_policy(self, text: str, base: PolicyDoc) -> bool:
        raise AssertionError("routes only")

    def create_auth_key(self, tags: Sequence[str], *, reusable: bool = False, expiry_seconds: int = 3600) -> str:
        raise AssertionError("routes only")


@pytest.fixture
def model(tmp_path):
    key = tmp_path / "key"
    key.write_text("k\n")
    key.chmod(0o600)
    sites = {"a": {"subnet": "192.0.2.0/24", "router": "192.0.2.2", "ssh": "root@ra"},
             "b": {"subnet": "172.16.100.0/24", "router": "172.16.100.2", "ssh": "root@rb",
                   "routes": ["10.98.0.0/16"]}}
    return load_sites(write_sites(tmp_path / "sites.toml", backend="headscale", url="http://127.0.0.1:1",
                                  key_file=key, sites=sites))


@pytest.fixture(autouse=True)
def fast(monkeypatch):
    monkeypatch.setattr(base, "SETTLE_EVERY", 0.001)


def approves(changes) -> set[str]:
    return {r for c in changes.route_updates for r in set(c.after) - set(c.node.approved)}


def test_without_settle_the_lagging_list_approves_nothing_new(model):
    cp = Lagging(lag=3)
    assert approves(cp.plan(model, policy=False)) == set()
    assert cp.calls == 1


def test_settle_waits_for_the_re_advertised_routes_and_approves_them(model):
    cp = Lagging(lag=3)
    assert approves(cp.plan(model, policy=False, settle=["b"])) == {"10.98.0.0/16"}
    assert cp.calls == 4


def test_settle_on_a_settled_router_reads_once(model):
    cp = Lagging(lag=0)
    assert approves(cp.plan(model, policy=False, settle=["b"])) == {"10.98.0.0/16"}
    assert cp.calls == 1


def test_settle_gives_up_after_its_timeout_and_plans_on_what_is_there(model, monkeypatch):
    monkeypatch.setattr(base, "SETTLE_SECONDS", 0.05)
    cp = Lagging(lag=10**9)
    changes = cp.plan(model, policy=False, settle=["b"])
    assert approves(changes) == set()
    assert "not advertised yet: 10.98.0.0/16" in changes.render()
    assert cp.calls > 1
