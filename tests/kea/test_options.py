"""Config edits from a canned config-get answer of Debian's Kea 2.2 (tests/kea/data/).

The fixture was captured from a real kea-dhcp4 2.2.0 (tests/kea/harness.py); it holds
a top-level subnet with a hand-made 121, a managed 249 with always-send and an
extra user-context key, and a pool that sets 121 itself; a shared network with
the site's LAN (id 7); an unrelated subnet (id 99).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from dhcp.kea.options import (
    MANAGED_BY,
    KeaConfigError,
    SubnetIndex,
    canonical,
    config_for_set,
    desired_options,
    is_managed,
    iter_subnets,
    merge_options,
    option_bytes,
    option_diff,
    options_match,
    same_option,
)
from dhcp.push import _scopes_inside

DATA = Path(__file__).with_name("data") / "config-get-kea-2.2.json"
ROUTES = bytes.fromhex("0A6440C0000202 00C0000201".replace(" ", ""))


@pytest.fixture
def config() -> dict:
    return json.loads(DATA.read_text())


def test_iter_subnets_sees_shared_networks(config):
    found = {(s["subnet"], net) for s, net in iter_subnets(config)}
    assert found == {("198.18.0.0/24", None), ("192.0.2.0/24", None),
                     ("172.16.100.0/24", "lan-b")}


def test_subnet_index_by_prefix_inside_a_shared_network(config):
    subnet = SubnetIndex(config).find("172.16.100.0/24")
    assert subnet["id"] == 7
    subnet["option-data"] = []  # a reference into the config, not a copy
    assert config["Dhcp4"]["shared-networks"][0]["subnet4"][0]["option-data"] == []


def test_subnet_index_by_id_and_mismatch(config):
    assert SubnetIndex(config).find("192.0.2.0/24", 1)["id"] == 1
    with pytest.raises(KeaConfigError, match="id 99 is 198.18.0.0/24, not the site's subnet"):
        SubnetIndex(config).find("192.0.2.0/24", 99)
    with pytest.raises(KeaConfigError, match=r"no subnet4 with id 5 \(has: .*192.0.2.0/24 id 1"):
        SubnetIndex(config).find("192.0.2.0/24", 5)
    with pytest.raises(KeaConfigError, match="no subnet4 for 10.0.0.0/8"):
        SubnetIndex(config).find("10.0.0.0/8")


def test_subnet_index_refuses_ambiguity(config):
    dup = copy.deepcopy(SubnetIndex(config).find("192.0.2.0/24"))
    dup["id"] = 2
    config["Dhcp4"]["subnet4"].append(dup)
    with pytest.raises(KeaConfigError, match="set kea.subnet_id"):
        SubnetIndex(config).find("192.0.2.0/24")


def test_desired_options_form():
    d121, d249 = desired_options(ROUTES)
    assert d121 == {"code": 121, "space": "dhcp4", "csv-format": False,
                    "data": "0A6440C000020200C0000201", "user-context": {"managed-by": MANAGED_BY}}
    assert d249["code"] == 249 and d249["data"] == d121["data"]
    assert [o["code"] for o in desired_options(ROUTES, (121,))] == [121]


@pytest.mark.parametrize("text", ["0A6440C000020200C0000201", "0a6440c000020200c0000201",
                                  "0a:64:40:c0:00:02:02:00:c0:00:02:01",
                                  "0a 64 40 c0 00 02 02 00 c0 00 02 01", "0x0A6440C000020200C0000201"])
def test_option_bytes_accepts_kea_hex_spellings(text):
    assert option_bytes({"data": text, "csv-format": False}) == ROUTES


def test_option_bytes_of_text_data_is_none():
    assert option_bytes({"data": "10.0.0.0/8 - 192.0.2.2", "csv-format": True}) is None
    assert option_bytes({"data": "zz"}) is None


def test_same_option_ignores_kea_normalisation():
    mine = desired_options(ROUTES)[0]
    echoed = {"always-send": False, "code": 121, "csv-format": False, "name": "",
              "data": "0A6440C000020200C0000201", "space": "dhcp4",
              "user-context": {"managed-by": MANAGED_BY}}
    assert same_option(echoed, mine)
    assert not same_option({**echoed, "data": "00C0000201"}, mine)       # other bytes
    assert not same_option({**echoed, "always-send": True}, mine)        # forced out
    assert not same_option({**echoed, "never-send": True}, mine)         # suppressed (3.x)
    assert not same_option({k: v for k, v in echoed.items() if k != "user-context"}, mine)


def test_hand_made_and_always_send_entries_are_a_change(config):
    subnet = SubnetIndex(config).find("192.0.2.0/24", 1)
    desired = desired_options(ROUTES)
    assert not options_match(subnet["option-data"], desired)


def test_merge_replaces_in_place_keeps_everything_else(config):
    subnet = SubnetIndex(config).find("192.0.2.0/24", 1)
    before = copy.deepcopy(subnet["option-data"])
    merged = merge_options(subnet["option-data"], desired_options(ROUTES))
    assert subnet["option-data"] == before  # input untouched
    assert [o["code"] for o in merged] == [3, 121, 249]
    assert merged[0] == before[0]
    assert all(is_managed(o) for o in merged[1:])
    assert "always-send" not in merged[2]
    assert merged[2]["user-context"] == {"managed-by": MANAGED_BY, "note": "kept"}
    assert options_match(merged, desired_options(ROUTES))


def test_merge_appends_when_absent_and_is_idempotent(config):
    subnet = SubnetIndex(config).find("172.16.100.0/24")
    merged = merge_options(subnet["option-data"], desired_options(ROUTES))
    assert [o["code"] for o in merged] == [3, 6, 121, 249]
    assert merge_options(merged, desired_options(ROUTES)) == merged


def test_turning_249_off_drops_only_our_own_249():
    ours = merge_options([], desired_options(ROUTES))
    only_121 = merge_options(ours, desired_options(ROUTES, (121,)))
    assert [o["code"] for o in only_121] == [121]
    assert not options_match(ours, desired_options(ROUTES, (121,)))
    hand_249 = {"code": 249, "data": "00C0000201", "csv-format": False, "space": "dhcp4"}
    kept = merge_options([hand_249, *only_121], desired_options(ROUTES, (121,)))
    assert hand_249 in kept
    assert options_match(kept, desired_options(ROUTES, (121,)))


def test_other_spaces_and_codes_are_not_ours():
    vendor = {"code": 121, "space": "vendor-encapsulated-options-space", "data": "01"}
    merged = merge_options([vendor], desired_options(ROUTES))
    assert merged[0] == vendor and len(merged) == 3


def test_overriding_pool_is_reported(config):
    scopes = _scopes_inside(SubnetIndex(config).find("192.0.2.0/24", 1))
    assert [key for key, _ in scopes] == [("pool", "192.0.2.10-192.0.2.20")]
    assert _scopes_inside(SubnetIndex(config).find("172.16.100.0/24")) == []


def test_config_for_set_strips_hash_and_copies(config):
    with_hash = {**config, "hash": "ABC"}
    out = config_for_set(with_hash)
    assert "hash" not in out and "hash" in with_hash
    out["Dhcp4"]["valid-lifetime"] = 1
    assert config["Dhcp4"]["valid-lifetime"] == 600


def test_canonical_ignores_key_order_and_hash_but_not_content(config):
    reordered = json.loads(json.dumps(config, sort_keys=False))
    reordered["Dhcp4"] = dict(reversed(list(reordered["Dhcp4"].items())))
    assert canonical({**reordered, "hash": "X"}) == canonical(config)
    changed = copy.deepcopy(config)
    SubnetIndex(changed).find("172.16.100.0/24")["option-data"].pop()
    assert canonical(changed) != canonical(config)


def test_option_diff_shows_only_option_changes(config):
    subnet = SubnetIndex(config).find("172.16.100.0/24")
    diff = option_diff(subnet["option-data"], merge_options(subnet["option-data"],
                                                            desired_options(ROUTES)), "lan")
    assert diff.startswith("--- lan (running)\n+++ lan (after push)\n")
    added = [ln for ln in diff.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    assert '+    "code": 121,' in added and '+    "code": 249,' in added
    assert not [ln for ln in diff.splitlines() if ln.startswith("-") and not ln.startswith("---")]
