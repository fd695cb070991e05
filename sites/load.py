"""Read a TOML site file and validate all of it before anything is contacted.

Every problem becomes one `SiteFileError` whose text names the file, the key
path and the bad value, so the CLI can print one line and exit 2.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from itertools import combinations
from pathlib import Path
from typing import Any

from netaddr import AddrFormatError, IPAddress, IPNetwork

from sites import schema
from sites.model import (
    DEFAULT_VRID,
    IPV6_GLOBAL,
    IPV6_LINK_LOCAL,
    IPV6_ULA,
    TAILSCALE_4VIA6,
    TAILSCALE_CGNAT,
    TAILSCALE_ULA,
    AwsSubnet,
    DhcpSettings,
    KeaEndpoint,
    Router,
    Site,
    SiteModel,
    SshSettings,
    SshTarget,
    StaticHost,
    Tailnet,
    Tailscale,
    default_vip6,
)

RESERVED = (
    (TAILSCALE_CGNAT, "Tailscale's 100.64.0.0/10"),
    (TAILSCALE_ULA, "Tailscale's fd7a:115c:a1e0::/48"),
    (TAILSCALE_4VIA6, "Tailscale's 4via6 range"),
)


DECLARED: Any = object()  # a key read with the default its model field declares
# errors speak TOML, not Python
TOML_TYPES = {"str": "string", "int": "integer", "bool": "boolean", "dict": "table", "list": "list"}


class SiteFileError(Exception):
    """A site file problem, as one line: `file: key: problem (got value)`."""

    def __init__(self, path: Path | str, key: str, problem: str, value: Any = None, *, show_value: bool = True):
        self.path, self.key, self.problem, self.value = str(path), key, problem, value
        got = f" (got {value!r})" if show_value else ""
        super().__init__(f"{self.path}: {key}: {problem}{got}")


class _Table:
    """One TOML table being read: tracks its key path, refuses keys its section does not declare,
    and reads each key with its declared type, default and choices (sites/schema.py)."""

    def __init__(self, path: Path, key: str, data: Any, section: str):
        self.path, self.key, self.section = path, key, section
        if not isinstance(data, dict):
            raise SiteFileError(path, key, "must be a table", data)
        self.data = data
        self.declared = {k.name: k for k in schema.SECTIONS[section]}
        for name in data:
            if name not in self.declared:
                raise self.error(name, f"unknown key (allowed: {', '.join(schema.keys(section))})", data[name])

    def at(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def error(self, name: str, problem: str, value: Any = None, **kw: Any) -> SiteFileError:
        return SiteFileError(self.path, self.at(name), problem, value, **kw)

    def get(self, name: str, default: Any = DECLARED, *, required: bool | None = None) -> Any:
        """The key's value, checked against its declared TOML type; absent: `default`, else the declared one."""
        declared = self.declared[name]
        if name not in self.data:
            if declared.required if required is None else required:
                raise SiteFileError(self.path, self.at(name), "missing required key", show_value=False)
            return declared.value if default is DECLARED else default
        value = self.data[name]
        kind = declared.kind or (str,)
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in kind):
            raise self.error(name, f"must be a {' or '.join(TOML_TYPES[k.__name__] for k in kind)}", value)
        return value

    def text(self, name: str, default: Any = DECLARED, *, required: bool | None = None) -> str | None:
        value = self.get(name, default, required=required)
        if value is not None and not value.strip():
            raise self.error(name, "must not be empty", value)
        return value

    def ssh(self, name: str, default: Any = DECLARED) -> str | None:
        """An SSH target text, checked by the one parser everything else uses (SshTarget)."""
        value = self.text(name, default)
        if value is not None:
            try:
                SshTarget.parse(value)
            except ValueError as exc:
                raise self.error(name, str(exc), value) from None
        return value

    def choice(self, name: str, default: Any = DECLARED) -> str | None:
        """A key that takes one of its declared choices."""
        value = self.text(name, default)
        options = self.declared[name].choices or ()
        if value is not None and value not in options:
            raise self.error(name, f"must be one of {', '.join(options)}", value)
        return value

    def table(self, name: str) -> _Table | None:
        return _Table(self.path, self.at(name), self.data[name], self.below(name)) if name in self.data else None

    def entries(self, name: str, items: list[Any]) -> Iterator[_Table]:
        """An array of tables' entries, each read as `name[i]` when its turn comes (errors in file order)."""
        for i, item in enumerate(items):
            yield _Table(self.path, self.at(f"{name}[{i}]"), item, self.below(name))

    def below(self, name: str) -> str:
        """The section of the table `name` in this one."""
        return f"{self.section}.{name}" if self.section else name

    def file(self, name: str) -> Path | None:
        """A path, relative to the site file's folder."""
        value = self.text(name)
        return None if value is None else (self.path.parent / value)

    def network(self, name: str, value: Any, key: str | None = None) -> IPNetwork:
        key = key or name
        if not isinstance(value, str):
            raise self.error(key, "must be a CIDR prefix string", value)
        try:
            net = IPNetwork(value)
        except (AddrFormatError, ValueError, TypeError):
            raise self.error(key, "not a valid CIDR prefix", value) from None
        if "/" not in value:
            raise self.error(key, "prefix length missing (write a.b.c.d/len)", value)
        if net.ip != net.network:
            raise self.error(key, f"host bits set (did you mean {net.cidr}?)", value)
        return net

    def address(self, name: str, value: Any) -> IPAddress:
        if not isinstance(value, str):
            raise self.error(name, "must be an IP address string", value)
        try:
            return IPAddress(value)
        except (AddrFormatError, ValueError, TypeError):
            raise self.error(name, "not a valid IP address", value) from None

    def networks(self, name: str) -> tuple[IPNetwork, ...]:
        values = self.get(name)
        return tuple(self.network(name, v, f"{name}[{i}]") for i, v in enumerate(values))


def parse_sites(path: Path, raw: dict[str, Any]) -> SiteModel:
    """Validate parsed TOML into a SiteModel (raises SiteFileError)."""
    top = _Table(path, "", raw, "")
    sites_table = top.get("sites")
    if len(sites_table) < 2:
        raise SiteFileError(path, "sites", "site-to-site needs at least two sites", sorted(sites_table))
    sites = {name: _site(path, name, body) for name, body in sites_table.items()}
    _check_overlaps(path, sites)
    _check_router_hosts(path, sites)
    _check_route_tables(path, sites)
    _check_static_hosts(path, sites)
    dhcp = _dhcp(top.table("dhcp"))
    model = SiteModel(
        path=path,
        sites=sites,
        tailnet=_tailnet(top.table("tailnet")),
        tailscale=_tailscale(top.table("tailscale")),
        dhcp=dhcp,
        ssh=_ssh(top.table("ssh")),
    )
    return model


def _site(path: Path, name: str, body: Any) -> Site:
    if not name.strip() or not all(c.isalnum() or c in "-_" for c in name):
        raise SiteFileError(path, f"sites.{name}", "site names must be non-empty letters, digits, - or _", name)
    t = _Table(path, f"sites.{name}", body, "sites.NAME")
    subnet = t.network("subnet", t.get("subnet"))
    if subnet.version != 4:
        raise t.error("subnet", "must be an IPv4 prefix (DHCPv4 option 121 carries IPv4 only)", str(subnet))
    for reserved, label in RESERVED:
        if subnet in reserved or reserved in subnet:
            raise t.error("subnet", f"overlaps {label}", str(subnet))
    routers, vip, vrid = _routers(t, subnet)
    router = vip if vip is not None else routers[0].address
    gateway = _host_in(t, "gateway", t.get("gateway", str(router)), subnet)
    if vip is not None:
        for i, r in enumerate(routers):
            if r.address == gateway:
                raise t.error("gateway", f"is routers[{i}]'s own address: the LAN's gateway would die "
                              "with that box (use the vip)", str(gateway))
    subnet6 = _subnet6(t)
    routes = t.networks("routes")
    for i, route in enumerate(routes):
        key = f"routes[{i}]"
        if route.version == 6:
            _ipv6_usable(t, key, route)
        for reserved, label in RESERVED:
            if route in reserved or reserved in route:
                raise t.error(key, f"overlaps {label}", str(route))
        for own, own_key in ((subnet, "subnet"), (subnet6, "subnet6")):
            if own is not None and own.version == route.version and (route in own or own in route):
                raise t.error(key, f"overlaps this site's own {own_key} {own}", str(route))
    for (i, r1), (j, r2) in combinations(enumerate(routes), 2):
        if r1 in r2 or r2 in r1:
            raise t.error(f"routes[{j}]", f"overlaps routes[{i}] {r1}", str(r2))
    keas = _keas(t)
    vip6 = _vip6(t, vip, vrid, subnet6)
    return Site(
        name=name,
        subnet=subnet,
        routers=routers,
        next_hop=router,
        gateway=gateway,
        routes=routes,
        kea=tuple(keas),
        client_routes=_client_routes(t.table("dhcp"), subnet),
        vip=vip,
        vrid=vrid,
        aws=_aws(t.table("aws")),
        hosts=_static_hosts(t),
        subnet6=subnet6,
        vip6=vip6,
    )


def _static_hosts(t: _Table) -> tuple[StaticHost, ...]:
    """[[sites.X.hosts]]: each static host's `ssh` and optional `manager`."""
    return tuple(StaticHost(entry.ssh("ssh"), entry.choice("manager")) for entry in t.entries("hosts", t.get("hosts")))


def _ipv6_usable(t: _Table, key: str, net: IPNetwork) -> None:
    """An IPv6 site prefix is global unicast or unique local (RFC 4193): link-local, multicast,
    mapped or documentation-less odd ranges are no LAN a router can advertise."""
    if net.prefixlen == 0 or not (net in IPV6_GLOBAL or net in IPV6_ULA):
        raise t.error(key, "must be a global (2000::/3) or unique local (fc00::/7) IPv6 prefix",
                      str(net))


def _subnet6(t: _Table) -> IPNetwork | None:
    """`subnet6`: the LAN's IPv6 prefix on a dual-stack site (the IPv4 `subnet` stays required)."""
    if "subnet6" not in t.data:
        return None
    net = t.network("subnet6", t.get("subnet6"))
    if net.version != 6:
        raise t.error("subnet6", "must be an IPv6 prefix (the IPv4 one is subnet)", str(net))
    _ipv6_usable(t, "subnet6", net)
    for reserved, label in RESERVED[1:]:
        if net in reserved or reserved in net:
            raise t.error("subnet6", f"overlaps {label}", str(net))
    return net


def _vip6(t: _Table, vip: IPAddress | None, vrid: int, subnet6: IPNetwork | None) -> IPAddress | None:
    """`vip6`: an HA dual-stack site's IPv6 VRRP address (keepalived's IPv6 instance), link-local as
    VRRPv3 wants its first address; derived from `vrid` when absent. None on any other site."""
    if vip is None or subnet6 is None:
        if "vip6" in t.data:
            raise t.error("vip6", "only for HA sites with subnet6 (two or more routers and an IPv6 LAN)",
                          t.data["vip6"])
        return None
    if "vip6" not in t.data:
        return default_vip6(vrid)
    value = t.get("vip6")
    address = t.address("vip6", value)
    if address.version != 6 or address not in IPV6_LINK_LOCAL or address == IPV6_LINK_LOCAL.network:
        raise t.error("vip6", "must be an IPv6 link-local address (fe80::/10)", value)
    return address


AWS_ID = {"route_tables": "rtb-", "network_interface": "eni-", "instance": "i-"}


def _aws_id(t: _Table, key: str, value: Any) -> str:
    prefix = AWS_ID[key.split("[")[0]]
    if not isinstance(value, str) or not value.startswith(prefix) or not value[len(prefix):].isalnum():
        raise t.error(key, f"must be an AWS id {prefix}...", value)
    return value


def _aws(t: _Table | None) -> AwsSubnet | None:
    """[sites.X.aws]: region, route_tables, the router's network_interface or instance, endpoint_url."""
    if t is None:
        return None
    region = t.text("region")
    if not all(c.isalnum() or c == "-" for c in region):
        raise t.error("region", "must be an AWS region name such as eu-central-1", region)
    tables = t.get("route_tables")
    if not tables:
        raise t.error("route_tables", "names no route table", tables)
    route_tables = tuple(_aws_id(t, f"route_tables[{i}]", v) for i, v in enumerate(tables))
    for i, rtb in enumerate(route_tables):
        if route_tables.index(rtb) != i:
            raise t.error(f"route_tables[{i}]", f"same route table as route_tables[{route_tables.index(rtb)}]", rtb)
    eni = t.data.get("network_interface")
    instance = t.data.get("instance")
    if (eni is None) == (instance is None):
        raise SiteFileError(t.path, t.at("network_interface"), "give the router's network_interface "
                            "or its instance (one of them)", show_value=False)
    endpoint = t.text("endpoint_url")
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        raise t.error("endpoint_url", "must be an http:// or https:// URL", endpoint)
    return AwsSubnet(
        region=region,
        route_tables=route_tables,
        network_interface=None if eni is None else _aws_id(t, "network_interface", eni),
        instance=None if instance is None else _aws_id(t, "instance", instance),
        endpoint_url=endpoint.rstrip("/") if endpoint else None,
    )


def _routers(t: _Table, subnet: IPNetwork) -> tuple[tuple[Router, ...], IPAddress | None, int]:
    """`router`/`ssh`/`tailnet_node` (one router), or `[[sites.X.routers]]` (an HA group: two or
    more, each with its own address and SSH target, sharing the VRRP address `vip`)."""
    if "routers" not in t.data:
        for key in ("vip", "vrid"):
            if key in t.data:
                raise t.error(key, "only for HA sites ([[sites.X.routers]] with two or more routers)", t.data[key])
        address = _host_in(t, "router", t.get("router", required=True), subnet)
        ssh = t.ssh("ssh", str(address)) or str(address)
        return (Router(address, ssh, t.text("tailnet_node")),), None, DEFAULT_VRID
    for key in ("router", "ssh", "tailnet_node"):
        if key in t.data:
            raise t.error(key, "set it per router in [[sites.X.routers]] (and the shared address as vip)",
                          t.data[key])
    items = t.get("routers")
    if len(items) < 2:
        raise t.error("routers", "an HA site names two or more routers (one router: use router and ssh)",
                      items)
    routers: list[Router] = []
    for entry in t.entries("routers", items):
        address = _host_in(entry, "address", entry.get("address"), subnet)
        ssh = entry.ssh("ssh", str(address)) or str(address)
        for j, seen in enumerate(routers):
            if seen.address == address:
                raise entry.error("address", f"same address as routers[{j}]", str(address))
            if SshTarget.parse(seen.ssh).name == SshTarget.parse(ssh).name:
                raise entry.error("ssh", f"same SSH target as routers[{j}]", ssh)
        routers.append(Router(address, ssh, entry.text("tailnet_node")))
    if "vip" not in t.data:
        raise SiteFileError(t.path, t.at("vip"), "missing required key (the VRRP address the LAN's clients "
                            "route through)", show_value=False)
    vip = _host_in(t, "vip", t.get("vip"), subnet)
    for i, r in enumerate(routers):
        if r.address == vip:
            raise t.error("vip", f"same address as routers[{i}] (the vip must be a free address)", str(vip))
    vrid = t.get("vrid")
    if not 1 <= vrid <= 255:
        raise t.error("vrid", "must be between 1 and 255 (VRRP virtual router id)", vrid)
    return tuple(routers), vip, vrid


def _client_routes(t: _Table | None, subnet: IPNetwork) -> tuple[tuple[IPNetwork, IPAddress], ...]:
    """[sites.X.dhcp] client_routes = [{prefix = "...", via = "..."}]: routes the LAN's clients
    get besides the plan's (the next hop must be on the LAN)."""
    if t is None:
        return ()
    routes: list[tuple[IPNetwork, IPAddress]] = []
    for entry in t.entries("client_routes", t.get("client_routes")):
        prefix = entry.network("prefix", entry.get("prefix"))
        if prefix.version != 4:
            raise entry.error("prefix", "must be an IPv4 prefix (option 121 carries IPv4 only)", str(prefix))
        if prefix.prefixlen == 0:
            raise entry.error("prefix", "the default route is the site's gateway; set gateway instead",
                              str(prefix))
        via = _host_in(entry, "via", entry.get("via"), subnet)
        for j, (seen, _) in enumerate(routes):
            if seen == prefix:
                raise entry.error("prefix", f"same prefix as client_routes[{j}]", str(prefix))
        routes.append((prefix, via))
    return tuple(routes)


def _host_in(t: _Table, name: str, value: Any, subnet: IPNetwork) -> IPAddress:
    addr = t.address(name, value)
    if addr not in subnet:
        raise t.error(name, f"outside the site's subnet {subnet}", value)
    if subnet.prefixlen < 31 and addr in (subnet.network, subnet.broadcast):
        kind = "network" if addr == subnet.network else "broadcast"
        raise t.error(name, f"is the subnet's {kind} address", value)
    return addr


def _check_overlaps(path: Path, sites: dict[str, Site]) -> None:
    """No prefix of one site may overlap any prefix of another (the recipe's first requirement)."""
    owned: list[tuple[str, IPNetwork]] = []
    for site in sites.values():
        owned.append((f"sites.{site.name}.subnet", site.subnet))
        if site.subnet6 is not None:
            owned.append((f"sites.{site.name}.subnet6", site.subnet6))
        owned.extend((f"sites.{site.name}.routes[{i}]", r) for i, r in enumerate(site.routes))
    # per family (their integers overlap), sorted by start: any overlap shows up between a
    # prefix and the widest one still open
    owned.sort(key=lambda kv: (kv[1].version, kv[1].first, -kv[1].last))
    widest: tuple[str, IPNetwork] | None = None
    for key, net in owned:
        if widest and widest[1].version != net.version:
            widest = None
        if widest and net.first <= widest[1].last:
            site_a, site_b = key.split(".")[1], widest[0].split(".")[1]
            if site_a != site_b:
                raise SiteFileError(path, key, f"overlaps {widest[0]} ({widest[1]})", str(net))
        if widest is None or net.last > widest[1].last:
            widest = (key, net)


def _check_router_hosts(path: Path, sites: dict[str, Site]) -> None:
    """One host is the router of one site: the inventory gives each router host one site role."""
    seen: dict[str, str] = {}
    for site in sites.values():
        for i, router in enumerate(site.routers):
            key = f"sites.{site.name}.routers[{i}].ssh" if site.ha else f"sites.{site.name}.ssh"
            name = SshTarget.parse(router.ssh).name
            if name in seen:
                raise SiteFileError(path, key, f"the same router host as {seen[name]}", router.ssh)
            seen[name] = key


def _check_static_hosts(path: Path, sites: dict[str, Site]) -> None:
    """A static host is one host of one site, and never a router: its routes point at the router."""
    seen = {SshTarget.parse(r.ssh).name: f"a router of site {s.name}"
            for s in sites.values() for r in s.routers}
    for site in sites.values():
        for i, static in enumerate(site.hosts):
            key = f"sites.{site.name}.hosts[{i}].ssh"
            name = SshTarget.parse(static.ssh).name
            if name in seen:
                raise SiteFileError(path, key, f"the same host as {seen[name]}", static.ssh)
            seen[name] = key


def _check_route_tables(path: Path, sites: dict[str, Site]) -> None:
    """A VPC route table serves one site: two sites' wants for one table would fight (each sends
    the other's prefixes to its own router, and 100.64.0.0/10 to both)."""
    seen: dict[str, str] = {}
    for site in sites.values():
        for i, rtb in enumerate(site.aws.route_tables if site.aws else ()):
            key = f"sites.{site.name}.aws.route_tables[{i}]"
            if rtb in seen:
                raise SiteFileError(path, key, f"the same route table as {seen[rtb]}", rtb)
            seen[rtb] = key


def _keas(site: _Table) -> list[KeaEndpoint]:
    """`[sites.X.kea]` (one server) or `[[sites.X.kea]]` (an HA pair: every server the LAN's
    leases come from, each with its own url/ssh/credentials)."""
    raw = site.data.get("kea")
    if raw is None:
        return []
    if isinstance(raw, list):
        if not raw:
            raise site.error("kea", "an empty list names no Kea server", raw)
        endpoints = [_kea(entry) for entry in site.entries("kea", raw)]
        seen: dict[tuple[str, str | None], int] = {}
        for i, ep in enumerate(endpoints):
            key = (ep.url, ep.ssh)
            if key in seen:
                raise site.error(f"kea[{i}].url", f"the same server as kea[{seen[key]}]", ep.url)
            seen[key] = i
        return endpoints
    table = site.table("kea")
    assert table is not None
    return [_kea(table)]


def _kea(t: _Table) -> KeaEndpoint:
    url = t.text("url")
    assert url is not None
    if not url.startswith(("http://", "https://")):
        raise t.error("url", "must be an http:// or https:// URL", url)
    subnet_id = t.get("subnet_id")
    if subnet_id is not None and not 1 <= subnet_id <= 4294967294:
        raise t.error("subnet_id", "must be between 1 and 4294967294", subnet_id)
    if "password_env" in t.data and "password_file" in t.data:
        raise t.error("password_file", "set password_env or password_file, not both", t.data["password_file"])
    return KeaEndpoint(
        url=url.rstrip("/"),
        user=t.text("user"),
        password_env=t.text("password_env"),
        password_file=t.file("password_file"),
        subnet_id=subnet_id,
        ssh=t.ssh("ssh"),
        api=t.choice("api"),
    )


def _tailnet(t: _Table | None) -> Tailnet | None:
    if t is None:
        return None
    backend = t.choice("backend")
    default_url = "https://api.tailscale.com/api/v2" if backend == "tailscale" else None
    url = t.text("url", default_url, required=default_url is None)
    assert url is not None
    for key in ("url", "login_server"):
        value = t.data.get(key)
        if value is not None and not str(value).startswith(("http://", "https://")):
            raise t.error(key, "must be an http:// or https:// URL", value)
    tag = t.text("tag")
    assert tag is not None
    if not tag.startswith("tag:") or len(tag) <= 4:
        raise t.error("tag", "must look like tag:NAME", tag)
    policy_mode = t.choice("policy_mode", "api" if backend == "tailscale" else DECLARED)
    if policy_mode == "file" and "policy_file" not in t.data:
        raise SiteFileError(t.path, t.at("policy_file"), "required when policy_mode = \"file\"", show_value=False)
    return Tailnet(
        backend=backend,
        url=url.rstrip("/"),
        tailnet=t.text("tailnet"),
        api_key_env=t.text("api_key_env"),
        api_key_file=t.file("api_key_file"),
        auth_key_env=t.text("auth_key_env"),
        auth_key_file=t.file("auth_key_file"),
        tag=tag,
        policy_mode=policy_mode,
        policy_file=t.text("policy_file"),
        policy_ssh=t.ssh("policy_ssh"),
        ssh=t.ssh("ssh"),
        login_server=(t.text("login_server") or "").rstrip("/") or None,
        policy_syntax=t.choice("policy_syntax"),
    )


def _tailscale(t: _Table | None) -> Tailscale:
    if t is None:
        return Tailscale()
    key_file = t.file("apt_key_file")
    return Tailscale(
        apt_repo=(t.text("apt_repo") or "").rstrip("/") or None,
        apt_suite=t.text("apt_suite") or None,
        apt_component=t.text("apt_component"),
        apt_key_url=None if key_file else t.text("apt_key_url"),
        apt_key_file=key_file,
        version=t.text("version"),
        no_logs_no_support=t.get("no_logs_no_support"),
    )


def _dhcp(t: _Table | None) -> DhcpSettings:
    if t is None:
        return DhcpSettings()
    auto = t.data.get("summaries") == "auto"
    if isinstance(t.data.get("summaries"), str) and not auto:
        raise t.error("summaries", 'must be a list of IPv4 prefixes or "auto"', t.data["summaries"])
    summaries = () if auto else t.networks("summaries")
    for i, s in enumerate(summaries):
        if s.version != 4:
            raise t.error(f"summaries[{i}]", "must be an IPv4 prefix", str(s))
    size = t.get("max_message_size")
    if not 576 <= size <= 1500:
        raise t.error("max_message_size", "must be between 576 and 1500 (DHCP minimum and Ethernet MTU)", size)
    reserved = t.get("reserved_option_bytes")
    if not 0 <= reserved < size - 240:
        raise t.error("reserved_option_bytes", f"must be between 0 and {size - 241}", reserved)
    return DhcpSettings(
        summaries=summaries,
        auto_summaries=auto,
        max_message_size=size,
        reserved_option_bytes=reserved,
        option_249=t.get("option_249"),
    )


def _ssh(t: _Table | None) -> SshSettings:
    if t is None:
        return SshSettings()
    return SshSettings(config_file=t.file("config_file"), user=t.text("user"), key_file=t.file("key_file"))


def load_sites(path: str | Path) -> SiteModel:
    """Read and validate a site file; raises SiteFileError with a one-line message."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SiteFileError(path, "(file)", "no such file", show_value=False) from None
    except OSError as exc:
        raise SiteFileError(path, "(file)", f"cannot read: {exc.strerror}", show_value=False) from None
    except tomllib.TOMLDecodeError as exc:
        raise SiteFileError(path, "(toml)", f"not valid TOML: {exc}", show_value=False) from None
    return parse_sites(path, raw)

