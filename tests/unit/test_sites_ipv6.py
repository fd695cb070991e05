"""IPv6 in the site file: `subnet6` and IPv6 `routes`, checked as the IPv4 ones are (one line, exit 2)."""

import subprocess
import sys

import pytest
from netaddr import IPNetwork

from dhcp.plan import build_plan as plan_all
from sites import load_sites
from tests.unit.test_sites import REPO, error_for, write

A = 'subnet = "192.0.2.0/24"\nrouter = "192.0.2.2"\n'
B = '[sites.b]\nsubnet = "172.16.100.0/24"\nrouter = "172.16.100.2"\nsubnet6 = "2001:db8:b::/64"\n'


def test_dual_stack_sites_load_and_advertise_both_families(tmp_path):
    model = load_sites(write(tmp_path, f'[sites.a]\n{A}subnet6 = "fd12:3456:789a:1::/64"\n'
                                       'routes = ["10.9.0.0/16", "2001:db8:99::/48"]\n' + B))
    a = model.sites["a"]
    assert a.subnet6 == IPNetwork("fd12:3456:789a:1::/64")
    assert [str(p) for p in a.advertised] == ["192.0.2.0/24", "fd12:3456:789a:1::/64", "10.9.0.0/16",
                                              "2001:db8:99::/48"]
    assert [str(p) for p in a.advertised4] == ["192.0.2.0/24", "10.9.0.0/16"]
    assert [str(p) for p in a.advertised6] == ["fd12:3456:789a:1::/64", "2001:db8:99::/48"]


def test_ipv6_prefixes_never_reach_option_121(tmp_path):
    model = load_sites(write(tmp_path, f'[sites.a]\n{A}gateway = "192.0.2.1"\nsubnet6 = "2001:db8:a::/64"\n'
                                       'routes = ["2001:db8:99::/48"]\n' + B + 'gateway = "172.16.100.1"\n'))
    for plan in plan_all(model).values():
        assert all(net.version == 4 for net, _ in plan.routes), plan.routes
    assert [str(n) for n, _ in plan_all(model)["a"].routes] == ["100.64.0.0/10", "172.16.100.0/24", "0.0.0.0/0"]


@pytest.mark.parametrize("extra,key,value,problem", [
    ('subnet6 = "192.0.3.0/24"', "sites.a.subnet6", "192.0.3.0/24", "must be an IPv6 prefix"),
    ('subnet6 = "2001:db8:a::1/64"', "sites.a.subnet6", "2001:db8:a::1/64", "host bits set"),
    ('subnet6 = "2001:db8:a::"', "sites.a.subnet6", "2001:db8:a::", "prefix length missing"),
    ('subnet6 = "fe80::/64"', "sites.a.subnet6", "fe80::/64", "global (2000::/3) or unique local"),
    ('subnet6 = "ff02::/16"', "sites.a.subnet6", "ff02::/16", "global (2000::/3) or unique local"),
    ('subnet6 = "::/0"', "sites.a.subnet6", "::/0", "global (2000::/3) or unique local"),
    ('subnet6 = "fd7a:115c:a1e0:ab12::/64"', "sites.a.subnet6", "fd7a:115c:a1e0:ab12::/64",
     "overlaps Tailscale's fd7a:115c:a1e0::/48"),
    ('subnet6 = "fd00::/8"', "sites.a.subnet6", "fd00::/8", "overlaps Tailscale's fd7a:115c:a1e0::/48"),
    ('subnet6 = 64', "sites.a.subnet6", 64, "must be a string"),
    ('routes = ["fd7a:115c:a1e0:b1a::/64"]', "sites.a.routes[0]", "fd7a:115c:a1e0:b1a::/64", "overlaps Tailscale"),
    ('routes = ["fd7a:115c:a1e0:b1a:0:1::/96"]', "sites.a.routes[0]", "fd7a:115c:a1e0:b1a:0:1::/96",
     "overlaps Tailscale"),
    ('routes = ["fe80::/10"]', "sites.a.routes[0]", "fe80::/10", "global (2000::/3) or unique local"),
    ('routes = ["2001:db8:a::1/48"]', "sites.a.routes[0]", "2001:db8:a::1/48", "host bits set"),
    ('subnet6 = "2001:db8:a::/64"\nroutes = ["2001:db8:a::/56"]', "sites.a.routes[0]", "2001:db8:a::/56",
     "overlaps this site's own subnet6 2001:db8:a::/64"),
    ('routes = ["2001:db8:c::/48", "2001:db8:c:1::/64"]', "sites.a.routes[1]", "2001:db8:c:1::/64",
     "overlaps routes[0]"),
])
def test_bad_ipv6_values_are_named(tmp_path, extra, key, value, problem):
    message = error_for(tmp_path, f"[sites.a]\n{A}{extra}\n{B}")
    assert f": {key}: " in message
    assert problem in message
    assert f"(got {value!r})" in message


@pytest.mark.parametrize("extra,key", [
    ('subnet6 = "2001:db8:b::/64"', "sites.b.subnet6"),          # the same LAN prefix twice
    ('subnet6 = "2001:db8::/32"', "sites.b.subnet6"),            # a's covers b's
    ('routes = ["2001:db8:b:0:8000::/65"]', "sites.a.routes[0]"),  # a route inside b's LAN
])
def test_ipv6_prefixes_of_two_sites_must_not_overlap(tmp_path, extra, key):
    message = error_for(tmp_path, f"[sites.a]\n{A}{extra}\n{B}")
    assert "overlaps" in message
    assert key in message


def test_families_do_not_collide_as_integers(tmp_path):
    """::c000:200/120 and 192.0.2.0/24 share their integers; only same-family prefixes overlap."""
    model = load_sites(write(tmp_path, f'[sites.a]\n{A}\n[sites.b]\nsubnet = "172.16.100.0/24"\n'
                                       'router = "172.16.100.2"\nroutes = ["2001:db8::c000:200/120"]\n'))
    assert model.sites["b"].advertised6 == (IPNetwork("2001:db8::c000:200/120"),)


def test_subnet_stays_required_on_a_dual_stack_site(tmp_path):
    message = error_for(tmp_path, '[sites.a]\nsubnet6 = "2001:db8:a::/64"\nrouter = "192.0.2.2"\n' + B)
    assert ": sites.a.subnet: missing required key" in message


def test_cli_one_line_exit_2_for_ipv6(tmp_path):
    path = write(tmp_path, f'[sites.a]\n{A}subnet6 = "fe80::/64"\n{B}')
    result = subprocess.run([sys.executable, "-m", "sites", "--sites", str(path)], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {path}: sites.a.subnet6: must be a global (2000::/3) or unique local (fc00::/7) "
        "IPv6 prefix (got 'fe80::/64')"]
