"""Typed, validated site model: what every other part of the project reads.

The TOML site file is parsed and checked only in `sites.load`; everything else
gets these frozen dataclasses, so no part can act on unvalidated input.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from netaddr import IPAddress, IPNetwork

TAILSCALE_CGNAT = IPNetwork("100.64.0.0/10")
TAILSCALE_ULA = IPNetwork("fd7a:115c:a1e0::/48")
TAILSCALE_4VIA6 = IPNetwork("fd7a:115c:a1e0:b1a::/64")
IPV6_GLOBAL = IPNetwork("2000::/3")  # global unicast: where an IPv6 site LAN may live, or ...
IPV6_ULA = IPNetwork("fc00::/7")  # ... a unique local prefix


class SecretError(Exception):
    """A secret named in the site file cannot be read (message never holds the secret)."""


def read_secret(env: str | None, path: Path | None, what: str) -> str | None:
    """Read a secret from an env var or a file; None when neither is configured."""
    if env:
        value = os.environ.get(env)
        if value is None:
            raise SecretError(f"{what}: environment variable {env} is not set")
        return value.strip()
    if path:
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise SecretError(f"{what}: cannot read {path}: {exc.strerror}") from None
    return None


@dataclass(frozen=True)
class SshTarget:
    """An SSH target of the site file, `[user@]host[:port]` (an IPv6 host in brackets when a port follows).

    Parsed here only, so the inventory, the deploy's steps, the tunnel and the
    control plane all read one host name from the same text.
    """

    host: str
    user: str | None = None
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> SshTarget:
        """Split `user@host:port`; raises ValueError naming what is wrong (sites.load reports it)."""
        user, _, hostport = text.strip().rpartition("@")
        host, port = hostport, ""
        if hostport.startswith("["):  # [v6]:port
            host, _, rest = hostport[1:].partition("]")
            if rest and not rest.startswith(":"):
                raise ValueError("expected [address]:port")
            port = rest[1:]
        elif hostport.count(":") == 1:  # more colons: a bare IPv6 address, no port
            host, port = hostport.split(":")
        if not host or any(c.isspace() for c in text.strip()):
            raise ValueError("expected [user@]host[:port]")
        if port and not (port.isdigit() and 1 <= int(port) <= 65535):
            raise ValueError("port must be a number from 1 to 65535")
        return cls(host=host, user=user or None, port=int(port) if port else None)

    @property
    def name(self) -> str:
        """pyinfra's inventory name for it (the port kept, so two sshd on one address stay two hosts)."""
        if self.port is None:
            return self.host
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class KeaEndpoint:
    """Where a site's Kea DHCPv4 server is controlled (Control Agent or HTTP socket)."""

    url: str
    user: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    subnet_id: int | None = None
    ssh: str | None = None  # reach `url` through this SSH host (CA on the Kea host's loopback)
    api: str = "control-agent"  # or "direct": Kea >= 3 HTTP control socket (no "service" key)

    def password(self) -> str | None:
        return read_secret(self.password_env, self.password_file, "kea password")

    def __repr__(self) -> str:  # keep secret locations out of casual logs, too
        return f"KeaEndpoint(url={self.url!r}, user={self.user!r}, subnet_id={self.subnet_id!r}, ssh={self.ssh!r})"


@dataclass(frozen=True)
class Router:
    """One subnet router of a site: its LAN address, how pyinfra reaches it, its tailnet node name."""

    address: IPAddress
    ssh: str
    tailnet_node: str | None = None


@dataclass(frozen=True)
class AwsSubnet:
    """A site whose LAN is an AWS VPC subnet: step 6 of Tailscale's site-to-site guide done in the
    provider's route tables. Credentials come from boto3's standard chain, never the site file."""

    region: str
    route_tables: tuple[str, ...]  # rtb-...: each sends the other sites' prefixes to the router
    network_interface: str | None = None  # eni-...: the router's; or `instance` (its primary ENI)
    instance: str | None = None  # i-...
    endpoint_url: str | None = None  # an EC2-compatible endpoint (a VPC endpoint; moto in the tests)


MANAGERS = ("networkd", "networkmanager", "ifupdown", "netplan")


@dataclass(frozen=True)
class StaticHost:
    """A LAN host with a static address (step 6 of Tailscale's site-to-site guide, "configure
    the other devices"): it gets the site's routes in its own network manager's config."""

    ssh: str
    manager: str | None = None  # one of MANAGERS; None: detected from the host


DEFAULT_VRID = 51  # keepalived's own example id; LANs are separate broadcast domains, so sites may share it


@dataclass(frozen=True)
class Site:
    """One LAN behind one or more subnet routers: every site has the same shape.

    `routers` has one router, or an HA group's routers sharing the VRRP address `vip`.
    `next_hop` is the one address the LAN's devices route the other sites through
    (option 121, static hosts, cloud routes): the vip on an HA site, else the router's
    own address. `kea` holds the site's Kea servers (one, or an HA pair's), or none.
    """

    name: str
    subnet: IPNetwork
    routers: tuple[Router, ...]
    next_hop: IPAddress
    gateway: IPAddress
    routes: tuple[IPNetwork, ...] = ()
    kea: tuple[KeaEndpoint, ...] = ()
    client_routes: tuple[tuple[IPNetwork, IPAddress], ...] = ()  # [sites.X.dhcp]: extra routes for LAN clients
    vip: IPAddress | None = None  # HA sites: the VRRP virtual address (== next_hop)
    vrid: int = DEFAULT_VRID  # HA sites: the VRRP virtual router id on the LAN
    aws: AwsSubnet | None = None  # [sites.X.aws]: the LAN is a VPC subnet whose route tables are managed
    hosts: tuple[StaticHost, ...] = ()  # [[sites.X.hosts]]: static-address hosts, given the routes
    subnet6: IPNetwork | None = None  # the LAN's IPv6 prefix: routes reach it by router advertisement

    def __post_init__(self) -> None:
        if not self.routers:
            raise ValueError(f"site {self.name}: a site has at least one router")

    @property
    def ha(self) -> bool:
        """Several routers share the LAN's next hop through VRRP (keepalived)."""
        return self.vip is not None

    def router_at(self, ssh: str) -> Router:
        """The router of this site reached through SSH target `ssh` (inventory data `router_ssh`)."""
        for router in self.routers:
            if router.ssh == ssh:
                return router
        raise KeyError(f"site {self.name}: no router with ssh {ssh!r}")

    def host_at(self, ssh: str) -> StaticHost:
        """The static host of this site reached through SSH target `ssh` (data `static_ssh`)."""
        for static in self.hosts:
            if static.ssh == ssh:
                return static
        raise KeyError(f"site {self.name}: no static host with ssh {ssh!r}")

    @property
    def advertised(self) -> tuple[IPNetwork, ...]:
        """Every prefix this site's router advertises to the tailnet (both families)."""
        own6 = (self.subnet6,) if self.subnet6 is not None else ()
        return (self.subnet, *own6, *self.routes)

    @property
    def advertised4(self) -> tuple[IPNetwork, ...]:
        """The IPv4 ones: what DHCPv4 option 121 and IPv4-only route tables carry."""
        return tuple(p for p in self.advertised if p.version == 4)

    @property
    def advertised6(self) -> tuple[IPNetwork, ...]:
        """The IPv6 ones: what the router's advertisements carry as route information (RFC 4191)."""
        return tuple(p for p in self.advertised if p.version == 6)


@dataclass(frozen=True)
class Tailnet:
    """The control plane: Headscale or Tailscale's API, and how routers join it."""

    backend: str
    url: str
    tailnet: str = "-"
    api_key_env: str | None = None
    api_key_file: Path | None = None
    auth_key_env: str | None = None
    auth_key_file: Path | None = None
    tag: str = "tag:subnet-router"
    policy_mode: str = "database"
    policy_file: str | None = None
    policy_ssh: str | None = None
    ssh: str | None = None  # reach `url` through this SSH host (server on its loopback)
    login_server: str | None = None
    policy_syntax: str = "auto"  # the traffic rules as grants or acls (controlplane.policy)

    def api_key(self) -> str:
        key = read_secret(self.api_key_env, self.api_key_file, "tailnet api key")
        if not key:
            raise SecretError("tailnet api key: set api_key_env or api_key_file in [tailnet]")
        return key

    def auth_key(self) -> str | None:
        return read_secret(self.auth_key_env, self.auth_key_file, "tailnet auth key")

    @property
    def control_url(self) -> str:
        """The URL routers log in to (`tailscale up --login-server`)."""
        return self.login_server or self.url


@dataclass(frozen=True)
class Tailscale:
    """Where routers install Tailscale from (a mirror in air-gapped sites and in the lab)."""

    # None: from each router's own /etc/os-release, in Tailscale's layout
    # (https://pkgs.tailscale.com/stable/<ID>, suite <VERSION_CODENAME>, key <repo>/<suite>.noarmor.gpg)
    apt_repo: str | None = None
    apt_suite: str | None = None
    apt_component: str = "main"
    apt_key_url: str | None = None
    apt_key_file: Path | None = None  # a local ASCII-armoured or binary key, uploaded instead of the URL
    version: str | None = None
    no_logs_no_support: bool = False  # tailscaled off Tailscale's log servers (the lab sets it)


@dataclass(frozen=True)
class DhcpSettings:
    """How routes are pushed to LAN clients."""

    summaries: tuple[IPNetwork, ...] = ()
    auto_summaries: bool = False  # summaries = "auto": dhcp.summaries picks them to fit every reply
    max_message_size: int = 576
    reserved_option_bytes: int = 64
    option_249: bool = True

    @property
    def route_codes(self) -> tuple[int, ...]:
        """The DHCP options that carry the routes: 121 (RFC 3442), and 249 (Microsoft's older
        twin, which some Windows clients read) unless turned off."""
        return (121, 249) if self.option_249 else (121,)


@dataclass(frozen=True)
class SshSettings:
    """How pyinfra reaches the hosts (an OpenSSH config file, e.g. the lab's)."""

    config_file: Path | None = None
    user: str | None = None
    key_file: Path | None = None


@dataclass(frozen=True)
class SiteModel:
    """The whole validated site file."""

    path: Path
    sites: dict[str, Site]
    tailnet: Tailnet | None = None
    tailscale: Tailscale = field(default_factory=Tailscale)
    dhcp: DhcpSettings = field(default_factory=DhcpSettings)
    ssh: SshSettings = field(default_factory=SshSettings)

    def remote_prefixes(self, site: Site) -> tuple[IPNetwork, ...]:
        """What the LAN of `site` reaches through its router: the tailnet's range and every
        other site's prefixes (step 6 of Tailscale's site-to-site guide)."""
        return (TAILSCALE_CGNAT, *(p for other in self.sites.values() if other is not site
                                   for p in other.advertised))
