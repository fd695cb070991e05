"""`[dhcp] summaries = "auto"`: every option fits, no local prefix is covered, the choice is stable."""

import random
from pathlib import Path

import pytest
from netaddr import IPNetwork, IPSet

from dhcp.plan import PlanError, build_plan, option_budget, reply_size
from dhcp.summaries import AutoSummaries
from sites import load_sites
from sites.load import SiteFileError
from sites.model import TAILSCALE_CGNAT, DhcpSettings, Router, Site, SiteModel

AUTO = '[dhcp]\nsummaries = "auto"\n'


def spread_sites(count: int, order: list[int] | None = None) -> str:
    """`count` /24s, every other one (nothing merges), the first with extra routes and client routes."""
    text = ""
    for i in order if order is not None else range(count):
        net = IPNetwork("10.0.0.0/24").next(2 * i)
        text += f'[sites.s{i}]\nsubnet = "{net}"\nrouter = "{net[2]}"\ngateway = "{net[1]}"\n'
        if i == 0:
            text += 'routes = ["10.0.9.0/24", "172.20.0.0/16"]\n'
            text += '[sites.s0.dhcp]\nclient_routes = [{ prefix = "10.0.41.0/24", via = "10.0.0.9" }]\n'
    return text


def model_of(tmp_path: Path, text: str, name: str = "sites.toml"):
    path = tmp_path / name
    path.write_text(text)
    return load_sites(path)


def test_without_auto_the_refusal_names_the_fix(tmp_path):
    with pytest.raises(PlanError, match='summaries = "auto"'):
        build_plan(model_of(tmp_path, spread_sites(60)))


def test_auto_makes_every_option_fit_and_still_reaches_every_other_site(tmp_path):
    model = model_of(tmp_path, spread_sites(60) + AUTO)
    plans = build_plan(model)
    for plan in plans.values():
        assert reply_size(len(plan.option_data), model.dhcp) <= option_budget(model.dhcp)
        via_router = IPSet(net for net, hop in plan.routes if hop == plan.site.next_hop)
        for other in model.sites.values():
            if other is not plan.site:
                assert all(p in via_router for p in other.advertised), (plan.site.name, other.name)
    assert any(p.summaries for p in plans.values())
    assert all(len(p.routes) < 30 for p in plans.values())


def test_auto_never_covers_a_local_prefix_or_a_client_route(tmp_path):
    model = model_of(tmp_path, spread_sites(60) + AUTO)
    plans = build_plan(model)
    for plan in plans.values():
        site = plan.site
        local = IPSet(site.advertised) | IPSet(net for net, _ in site.client_routes)
        for net, hop in plan.routes:
            if (net, hop) in site.client_routes or str(net) == "0.0.0.0/0":
                continue
            assert not (IPSet([net]) & local), (site.name, str(net))
        assert not any(IPSet([s]) & IPSet([TAILSCALE_CGNAT]) for s in plan.summaries)
    s0 = plans["s0"]
    assert ("10.0.41.0/24", "10.0.0.9") in [(str(n), str(h)) for n, h in s0.routes]


def test_auto_is_stable_whatever_the_order_of_the_file(tmp_path):
    first = build_plan(model_of(tmp_path, spread_sites(60) + AUTO, "a.toml"))
    order = list(range(60))
    random.Random(7).shuffle(order)
    second = build_plan(model_of(tmp_path, spread_sites(60, order) + AUTO, "b.toml"))
    again = build_plan(model_of(tmp_path, spread_sites(60) + AUTO, "a.toml"))
    for name, plan in first.items():
        assert plan.routes == second[name].routes == again[name].routes
        assert plan.summaries == second[name].summaries


def test_no_summary_when_everything_fits(tmp_path):
    plans = build_plan(model_of(tmp_path, spread_sites(5) + AUTO))
    assert not any(p.summaries for p in plans.values())
    # the same routes as without auto
    assert plans["s1"].routes == build_plan(model_of(tmp_path, spread_sites(5), "plain.toml"))["s1"].routes


def test_summaries_keep_out_of_the_tailnet_range(tmp_path):
    text = ""
    for i, net in enumerate(IPNetwork("100.0.0.0/8").subnet(24)):
        if i % 997 == 0 and net not in TAILSCALE_CGNAT:
            text += f'[sites.t{i}]\nsubnet = "{net}"\nrouter = "{net[2]}"\ngateway = "{net[1]}"\n'
    plans = build_plan(model_of(tmp_path, text + AUTO))
    for plan in plans.values():
        assert all(not (IPSet([n]) & IPSet([TAILSCALE_CGNAT])) for n in plan.summaries)
        assert (TAILSCALE_CGNAT, plan.site.next_hop) in plan.routes


def test_summaries_must_be_auto_or_a_list(tmp_path):
    with pytest.raises(SiteFileError, match=r'dhcp.summaries: must be a list of IPv4 prefixes or "auto"'):
        model_of(tmp_path, spread_sites(2) + '[dhcp]\nsummaries = "yes"\n')
    assert model_of(tmp_path, spread_sites(2) + AUTO).dhcp.auto_summaries


def test_plan_shows_the_auto_summaries(tmp_path):
    from dhcp.plan import as_json, describe

    plans = build_plan(model_of(tmp_path, spread_sites(60) + AUTO))
    plan = next(p for p in plans.values() if p.summaries)
    assert "(auto summary)" in describe(plan)
    assert any(r.get("auto_summary") for r in as_json(plan)["routes"])


def test_ten_thousand_sites_fit_and_cover_nothing_local():
    """Correctness at 10,000 sites (its time is a figure of bench/plan_bench.py, not asserted here)."""
    sites = []
    for i in range(10_000):
        net = IPNetwork((IPNetwork("10.0.0.0/24").first + 512 * i, 24))
        sites.append(
            Site(name=f"s{i}", subnet=net, routers=(Router(net[2], f"h{i}"),), next_hop=net[2], gateway=net[1])
        )
    model = SiteModel(path=Path("big.toml"), sites={s.name: s for s in sites}, dhcp=DhcpSettings(auto_summaries=True))
    budget = 250
    auto = AutoSummaries(sites, {s.name: budget for s in sites})
    assert auto.fits and 0 < auto.cut < 24
    everything = IPSet(s.subnet for s in sites)
    for site in sites[::997] + [sites[-1]]:
        routes = auto.for_site(site)
        assert sum(r.size for r in routes) <= budget
        pushed = IPSet(r.network for r in routes)
        assert not pushed & IPSet([site.subnet])
        assert (everything - IPSet([site.subnet])) <= pushed
    assert model.dhcp.auto_summaries
