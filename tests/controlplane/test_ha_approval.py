"""HA sites: every router of the site gets the site's routes approved on its own node (Tailscale stand-in)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane import ControlPlaneError, connect
from sites import load_sites
from tests.controlplane.tailscale_standin import Device, StandIn
from tests.controlplane.test_tailscale_standin import HAND, KEY

SITES = """
[sites.a]
subnet = "192.0.2.0/24"
gateway = "192.0.2.1"
vip = "192.0.2.3"
[[sites.a.routers]]
address = "192.0.2.2"
ssh = "root@sc-ra"
[[sites.a.routers]]
address = "192.0.2.4"
ssh = "root@sc-ra2"
[sites.b]
subnet = "172.16.100.0/24"
router = "172.16.100.2"
ssh = "root@sc-rb"
[tailnet]
backend = "tailscale"
url = "{url}"
api_key_file = "{key}"
"""


@pytest.fixture
def standin() -> Iterator[StandIn]:
    server = StandIn(KEY, HAND, [
        Device("1001", "sc-ra", ["100.101.1.1"], ["192.0.2.0/24"]),
        # the other router advertises the same prefix; someone else approved its 203.0.113.0/24
        Device("1004", "sc-ra2", ["100.101.1.4"], ["192.0.2.0/24", "203.0.113.0/24"], enabled=["203.0.113.0/24"]),
        Device("1002", "sc-rb", ["100.101.1.2"], ["172.16.100.0/24"]),
    ]).start()
    try:
        yield server
    finally:
        server.stop()


def model_for(tmp_path: Path, url: str, text: str = SITES):
    key = tmp_path / "api.key"
    key.write_text(KEY + "\n")
    path = tmp_path / "sites.toml"
    path.write_text(text.format(url=url, key=key))
    return load_sites(path)


def test_every_router_of_an_ha_site_is_approved_and_foreign_routes_kept(standin, tmp_path):
    model = model_for(tmp_path, standin.url)
    cp = connect(model)
    changes = cp.plan(model)
    assert sorted(c.node.label.split(".")[0] for c in changes.route_updates) == ["sc-ra", "sc-ra2", "sc-rb"]
    cp.apply(changes)
    assert standin.devices["1001"].enabled == ["192.0.2.0/24"]
    assert sorted(standin.devices["1004"].enabled) == ["192.0.2.0/24", "203.0.113.0/24"]  # theirs kept
    assert standin.devices["1002"].enabled == ["172.16.100.0/24"]
    assert cp.plan(model).empty


def test_two_routers_resolving_to_one_node_is_an_error(standin, tmp_path):
    text = SITES.replace('ssh = "root@sc-ra2"', 'ssh = "root@sc-ra2"\ntailnet_node = "sc-ra"')
    model = model_for(tmp_path, standin.url, text)
    with pytest.raises(ControlPlaneError, match="same node"):
        connect(model).plan(model)
