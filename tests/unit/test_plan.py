"""The route plan: what each LAN gets, merging, summaries and the one-packet limit."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from netaddr import IPNetwork

from dhcp.plan import PlanError, build_plan
from dhcp.rfc3442 import decode
from sites import load_sites

REPO = Path(__file__).resolve().parents[2]


def model_from(tmp_path: Path, text: str):
    path = tmp_path / "sites.toml"
    path.write_text(text)
    return load_sites(path)


def site(name: str, subnet: str, router: str, gateway: str | None = None, routes: str = "") -> str:
    lines = [f"[sites.{name}]", f'subnet = "{subnet}"', f'router = "{router}"']
    if gateway:
        lines.append(f'gateway = "{gateway}"')
    if routes:
        lines.append(f"routes = {routes}")
    return "\n".join(lines) + "\n"


def routes_of(plan) -> list[tuple[str, str]]:
    return [(str(n), str(h)) for n, h in plan.routes]


def test_the_guides_example_routes_and_bytes(tmp_path):
    model = model_from(tmp_path, site("a", "192.0.2.0/24", "192.0.2.2", "192.0.2.1")
                       + site("b", "172.16.100.0/24", "172.16.100.2", "172.16.100.1"))
    plans = build_plan(model)
    assert routes_of(plans["a"]) == [("100.64.0.0/10", "192.0.2.2"), ("172.16.100.0/24", "192.0.2.2"),
                                     ("0.0.0.0/0", "192.0.2.1")]
    assert plans["a"].option_data.hex() == "0a6440c000020218ac1064c000020200c0000201"
    assert decode(plans["b"].option_data) == list(plans["b"].routes)
    assert plans["a"].push_needed and plans["b"].push_needed


def test_extra_routes_of_other_sites_are_included_and_own_excluded(tmp_path):
    model = model_from(tmp_path, site("a", "192.0.2.0/24", "192.0.2.2", "192.0.2.1", '["10.1.0.0/16"]')
                       + site("b", "172.16.100.0/24", "172.16.100.2", "172.16.100.1", '["10.2.0.0/16"]'))
    plans = build_plan(model)
    a = routes_of(plans["a"])
    assert ("10.2.0.0/16", "192.0.2.2") in a and all(not r.startswith("10.1.") for r, _ in a)
    assert ("10.1.0.0/16", "172.16.100.2") in routes_of(plans["b"])


def test_adjacent_prefixes_are_merged(tmp_path):
    text = site("a", "192.0.2.0/24", "192.0.2.2", "192.0.2.1")
    text += site("b", "10.0.0.0/24", "10.0.0.2", "10.0.0.1") + site("c", "10.0.1.0/24", "10.0.1.2", "10.0.1.1")
    plans = build_plan(model_from(tmp_path, text))
    assert ("10.0.0.0/23", "192.0.2.2") in routes_of(plans["a"])
    # for b, its own /24 is cut back out of the merged /23
    assert ("10.0.1.0/24", "10.0.0.2") in routes_of(plans["b"])
    assert all(r != "10.0.0.0/23" for r, _ in routes_of(plans["b"]))


def test_router_equal_to_gateway_needs_no_push(tmp_path):
    plans = build_plan(model_from(tmp_path, site("a", "192.0.2.0/24", "192.0.2.1")
                                  + site("b", "172.16.100.0/24", "172.16.100.2", "172.16.100.1")))
    assert not plans["a"].push_needed and "no push needed" in plans["a"].reason
    assert plans["b"].push_needed


def many_sites(count: int, extra: str = "") -> str:
    # non-adjacent /24s (every other one) so merging cannot shrink the list
    text = site("hq", "192.0.2.0/24", "192.0.2.2", "192.0.2.1")
    for i in range(count):
        net = IPNetwork("10.0.0.0/24").next(2 * i)
        text += site(f"s{i}", str(net), str(net[2]), str(net[1]))
    return text + extra


def test_too_many_routes_fail_naming_site_and_size(tmp_path):
    with pytest.raises(PlanError) as info:
        build_plan(model_from(tmp_path, many_sites(40)))
    message = str(info.value)
    assert "sites.hq" in message  # 40 remote /24s (8 bytes each) + 100.64/10 (7) + default (5)
    assert "42 routes make a 332-byte option 121" in message
    assert "576-byte DHCP reply leaves 272" in message
    assert "summaries" in message and "\n" not in message


def test_summaries_make_large_plans_fit(tmp_path):
    model = model_from(tmp_path, many_sites(40, '[dhcp]\nsummaries = ["10.0.0.0/8"]\n'))
    plans = build_plan(model)
    assert routes_of(plans["hq"]) == [("10.0.0.0/8", "192.0.2.2"), ("100.64.0.0/10", "192.0.2.2"),
                                      ("0.0.0.0/0", "192.0.2.1")]
    # a site inside the summary gets the summary too (its connected /24 stays more specific)
    assert ("10.0.0.0/8", "10.0.0.2") in routes_of(plans["s0"])
    assert ("192.0.2.0/24", "10.0.0.2") in routes_of(plans["s0"])


def test_larger_message_size_lets_more_routes_through(tmp_path):
    plans = build_plan(model_from(tmp_path, many_sites(40, "[dhcp]\nmax_message_size = 1500\n")))
    assert len(plans["hq"].routes) == 42


def test_dropping_option_249_halves_the_wire_size(tmp_path):
    # 20 remote /24s: 2 * (20*8 + 7 + 5 + 2) = 348 > 272, alone 174 fits
    with pytest.raises(PlanError):
        build_plan(model_from(tmp_path, many_sites(20)))
    plans = build_plan(model_from(tmp_path, many_sites(20, "[dhcp]\noption_249 = false\n")))
    assert len(plans["hq"].option_data) == 20 * 8 + 7 + 5


def test_cli_plan_json(tmp_path):
    path = tmp_path / "sites.toml"
    path.write_text(site("a", "192.0.2.0/24", "192.0.2.2", "192.0.2.1")
                    + site("b", "172.16.100.0/24", "172.16.100.2", "172.16.100.1"))
    out = subprocess.run([sys.executable, "-m", "dhcp", "plan", "--json", "--sites", str(path)],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    assert data[0]["site"] == "a" and data[0]["option_121_hex"] == "0A6440C000020218AC1064C000020200C0000201"
    assert data[1]["routes"][1] == {"prefix": "192.0.2.0/24", "via": "172.16.100.2"}


def test_cli_plan_too_big_exits_2_with_one_line(tmp_path):
    path = tmp_path / "sites.toml"
    path.write_text(many_sites(40))
    result = subprocess.run([sys.executable, "-m", "dhcp", "plan", "--sites", str(path)],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


# -- [sites.X.dhcp] client_routes -------------------------------------------------------
def _client_routes_model(tmp_path, routes: str):
    from sites import load_sites

    path = tmp_path / "sites.toml"
    path.write_text(f"""
[sites.a]
subnet = "192.0.2.0/24"
router = "192.0.2.2"
gateway = "192.0.2.1"
[sites.a.dhcp]
client_routes = [{routes}]
[sites.b]
subnet = "172.16.100.0/24"
router = "172.16.100.2"
""")
    return load_sites(path)


def test_client_routes_are_planned_before_the_default_route(tmp_path):
    from dhcp.plan import build_plan

    model = _client_routes_model(tmp_path, '{ prefix = "10.99.0.0/16", via = "192.0.2.9" }')
    plan = build_plan(model)["a"]
    texts = [(str(n), str(h)) for n, h in plan.routes]
    assert texts[-2:] == [("10.99.0.0/16", "192.0.2.9"), ("0.0.0.0/0", "192.0.2.1")]
    assert ("172.16.100.0/24", "192.0.2.2") in texts


def test_client_route_with_another_hop_for_a_planned_prefix_is_a_plan_error(tmp_path):
    import pytest

    from dhcp.plan import PlanError, build_plan

    model = _client_routes_model(tmp_path, '{ prefix = "172.16.100.0/24", via = "192.0.2.9" }')
    with pytest.raises(PlanError, match=r"sites.a.dhcp.client_routes\[0\]: 172.16.100.0/24 via 192.0.2.9 "
                                        r"conflicts with the plan's 172.16.100.0/24 via 192.0.2.2"):
        build_plan(model)


def test_client_routes_count_against_the_packet_size(tmp_path):
    import pytest

    from dhcp.plan import PlanError, build_plan

    many = ", ".join(f'{{ prefix = "10.{i}.0.0/16", via = "192.0.2.9" }}' for i in range(40))
    with pytest.raises(PlanError, match="43 routes make"):
        build_plan(_client_routes_model(tmp_path, many))


def test_client_routes_bad_input_names_the_key(tmp_path):
    import pytest

    from sites.load import SiteFileError

    with pytest.raises(SiteFileError, match=r"sites.a.dhcp.client_routes\[0\].via: outside the site's subnet"):
        _client_routes_model(tmp_path, '{ prefix = "10.99.0.0/16", via = "198.51.100.1" }')
    with pytest.raises(SiteFileError, match=r"client_routes\[0\].prefix: host bits set"):
        _client_routes_model(tmp_path, '{ prefix = "10.99.0.1/16", via = "192.0.2.9" }')
    with pytest.raises(SiteFileError, match=r"client_routes\[0\].prefix: the default route is the site's gateway"):
        _client_routes_model(tmp_path, '{ prefix = "0.0.0.0/0", via = "192.0.2.9" }')
