"""The applied record, the prune flag and the control plane's removal plan (an in-memory backend)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controlplane.base import ControlPlane
from controlplane.model import Node, PolicyDoc
from removal import record
from removal.record import AppliedRouter
from sites import load_sites
from steps.retire import prune_command, still_recorded

SITES = """
[sites.a]
subnet = "192.0.2.0/24"
router = "192.0.2.2"
ssh = "root@ra"

[sites.b]
subnet = "198.51.100.0/24"
router = "198.51.100.2"
ssh = "rb:2222"
tailnet_node = "router-b"
routes = ["10.99.0.0/16"]
"""
GONE = AppliedRouter("c", "rc", None, ("203.0.113.0/24",))


@pytest.fixture
def model(tmp_path: Path):
    path = tmp_path / "sites.toml"
    path.write_text(SITES)
    return load_sites(path)


def test_declared_routers_and_the_record_round_trip(model, tmp_path):
    declared = record.declared(model)
    assert declared == [AppliedRouter("a", "root@ra", None, ("192.0.2.0/24",)),
                        AppliedRouter("b", "rb:2222", "router-b", ("198.51.100.0/24", "10.99.0.0/16"))]
    path = record.record_path(model)
    assert path == tmp_path / "sites.toml.applied.json"
    assert record.read(path) == []  # no record yet: a first deploy
    assert record.write(path, declared + [GONE]) is True
    assert record.write(path, declared + [GONE]) is False  # unchanged: not rewritten
    assert record.read(path) == declared + [GONE]
    text = path.read_text()
    assert "password" not in text and "key" not in text  # only names and prefixes
    assert json.loads(text)["version"] == 1


def test_removed_is_what_the_record_has_and_the_site_file_not(model):
    recorded = record.declared(model) + [GONE]
    assert record.removed(model, recorded) == [GONE]
    # matched by the SSH target pyinfra connects to (host and port), not by the site's name
    moved = AppliedRouter("a", "root@ra", None, ("192.0.2.0/24",))
    assert record.removed(model, [moved]) == []
    assert record.removed(model, [AppliedRouter("b", "rb:2200", None, ())]) != []


def test_after_a_run_the_record_keeps_removed_routers_not_cleaned(model):
    recorded = record.declared(model) + [GONE]
    assert still_recorded(model, recorded, cleaned=set()) == recorded  # not pruned (or failed): kept
    assert still_recorded(model, recorded, cleaned={"rc"}) == record.declared(model)


@pytest.mark.parametrize("text", ["{", '{"routers": [{"site": "a"}]}', '{"nothing": 1}'])
def test_a_broken_record_is_one_line_naming_the_file(tmp_path, text):
    path = tmp_path / "s.toml.applied.json"
    path.write_text(text)
    with pytest.raises(record.RecordError, match=str(path)):
        record.read(path)


@pytest.mark.parametrize("argv, want", [
    (["pyinfra", "inventory.py", "deploy.py"], False),
    (["pyinfra", "inventory.py", "deploy.py", "--data", "prune=true"], True),
    (["pyinfra", "--data=prune=True", "inventory.py", "deploy.py"], True),
    (["pyinfra", "--data", "prune=false", "inventory.py", "deploy.py"], False),
    (["pyinfra", "--data", "other=true", "inventory.py", "deploy.py"], False),
])
def test_prune_flag_read_as_pyinfra_parses_data(argv, want):
    assert record.prune_requested(argv) is want


def test_the_warning_names_the_exact_command(model):
    assert prune_command(model) == f"SITES={model.path} pyinfra inventory.py deploy.py --data prune=true"
    assert prune_command(model, dry=True).endswith("--data prune=true --dry --diff")


class MemoryControlPlane(ControlPlane):
    """Nodes and approvals in memory; records every write."""

    def __init__(self, nodes: list[Node]) -> None:
        super().__init__()
        self.nodes = {n.id: n for n in nodes}
        self.writes: list[tuple[str, tuple[str, ...]]] = []

    def list_nodes(self):
        return list(self.nodes.values())

    def set_routes(self, node, routes):
        self.writes.append((node.id, tuple(routes)))
        old = self.nodes[node.id]
        self.nodes[node.id] = Node(old.id, old.name, old.hostname, advertised=old.advertised, approved=tuple(routes))

    def read_policy(self):
        return PolicyDoc("")

    def check_policy(self, text):
        pass

    def write_policy(self, text, base):
        raise AssertionError("the removal plan writes no policy")

    def create_auth_key(self, tags, **kw):
        raise AssertionError


def nodes() -> list[Node]:
    return [Node("1", "ra", "ra", advertised=("192.0.2.0/24",), approved=("192.0.2.0/24",)),
            Node("2", "router-b", "router-b", advertised=("198.51.100.0/24",), approved=("198.51.100.0/24",)),
            # the removed router: its site prefix (ours) and an exit route someone else approved
            Node("3", "rc", "rc", advertised=("203.0.113.0/24", "0.0.0.0/0"), approved=("0.0.0.0/0", "203.0.113.0/24"))]


def test_removal_unapproves_only_the_recorded_prefixes_and_a_second_run_does_nothing(model):
    cp = MemoryControlPlane(nodes())
    changes = cp.plan_removal(model, [GONE])
    assert not changes.empty and changes.policy is None and not changes.route_updates
    assert "site c (removed): router rc (id 3): unapprove 203.0.113.0/24" in changes.render()
    assert "kept (approved by someone else): 0.0.0.0/0" in changes.render()
    assert cp.apply(changes) == ["site c (removed): rc: unapproved 203.0.113.0/24"]
    assert cp.writes == [("3", ("0.0.0.0/0",))]
    again = cp.plan_removal(model, [GONE])
    assert again.empty and cp.apply(again) == [] and len(cp.writes) == 1


def test_a_removed_router_not_in_the_tailnet_or_now_declared_is_left_alone(model):
    cp = MemoryControlPlane(nodes()[:2])
    changes = cp.plan_removal(model, [GONE])
    assert changes.empty and "rc is not in the tailnet" in changes.notes[0]
    # the record names a node that a declared router uses now (name re-used): not ours to take back
    reused = AppliedRouter("old-b", "old-b-host", "router-b", ("198.51.100.0/24",))
    changes = MemoryControlPlane(nodes()).plan_removal(model, [reused])
    assert changes.empty and "declared router's" in changes.notes[0]


def test_one_router_of_a_site_that_stays_loses_its_approvals_the_other_keeps_them(model):
    """HA: site a had two routers; the second left the site file, the site did not."""
    second = AppliedRouter("a", "root@ra2", None, ("192.0.2.0/24",))
    assert record.removed(model, record.declared(model) + [second]) == [second]
    cp = MemoryControlPlane(nodes() + [Node("4", "ra2", "ra2", advertised=("192.0.2.0/24",),
                                            approved=("192.0.2.0/24",))])
    changes = cp.plan_removal(model, [second])
    assert [(u.node.id, u.removed) for u in changes.unapprovals] == [("4", ["192.0.2.0/24"])]
    cp.apply(changes)
    assert cp.nodes["4"].approved == () and cp.nodes["1"].approved == ("192.0.2.0/24",)


def test_a_prefix_dropped_from_a_site_that_stays_is_retired_and_unapproved_by_the_routes_step(model):
    # the last deploy recorded b with an extra prefix 10.98.0.0/16 that the site file no longer has
    recorded = [AppliedRouter("a", "root@ra", None, ("192.0.2.0/24",)),
                AppliedRouter("b", "rb:2222", "router-b", ("198.51.100.0/24", "10.99.0.0/16", "10.98.0.0/16"))]
    retired = record.retired(model, recorded)
    assert retired == {"rb:2222": ("10.98.0.0/16",)}  # by inventory name (host and port)
    assert record.retired(model, record.declared(model)) == {}
    cp = MemoryControlPlane([
        Node("1", "ra", "ra", advertised=("192.0.2.0/24",), approved=("192.0.2.0/24",)),
        Node("2", "router-b", "router-b", advertised=("198.51.100.0/24", "10.99.0.0/16"),
             approved=("198.51.100.0/24", "10.99.0.0/16", "10.98.0.0/16", "0.0.0.0/0"))])
    assert cp.plan(model, policy=False).empty  # without the record: someone else's, kept
    changes = cp.plan(model, policy=False, retired=retired)
    assert "site b: router router-b (id 2): routes already approved; drop (ours, no longer advertised) 10.98.0.0/16" \
        in changes.render()
    assert cp.apply(changes) == ["site b: router-b: approved routes now 0.0.0.0/0, 10.99.0.0/16, 198.51.100.0/24"]
    assert cp.plan(model, policy=False, retired=retired).empty  # a second run changes nothing
    # the record forgets the retired prefix after a clean run, keeps it after a run where a host failed
    assert still_recorded(model, recorded, cleaned=set()) == record.declared(model)
    kept = still_recorded(model, recorded, cleaned=set(), failed=True)
    assert kept[1].prefixes == ("198.51.100.0/24", "10.99.0.0/16", "10.98.0.0/16")
