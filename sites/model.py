"""Typed, validated site model: what every other part of the project reads.

The TOML site file is parsed and checked only in `sites.load`; everything else
gets these frozen dataclasses, so no part can act on unvalidated input. Each field
read from the site file declares its key here (`key(...)`: what it means, its default;
sites/declare.py): validation, error messages and the README's tables come from that.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from netaddr import IPAddress, IPNetwork

from sites.declare import Key, key, keys

TAILSCALE_CGNAT = IPNetwork("100.64.0.0/10")
TAILSCALE_ULA = IPNetwork("fd7a:115c:a1e0::/48")
TAILSCALE_4VIA6 = IPNetwork("fd7a:115c:a1e0:b1a::/64")
IPV6_GLOBAL = IPNetwork("2000::/3")  # global unicast: where an IPv6 site LAN may live, or ...
IPV6_ULA = IPNetwork("fc00::/7")  # ... a unique local prefix
IPV6_LINK_LOCAL = IPNetwork("fe80::/10")


def default_vip6(vrid: int) -> IPAddress:
    """An HA dual-stack site's IPv6 VRRP address when the site file names none: the link-local
    address (modified EUI-64) of VRRP's IPv6 virtual MAC 00:00:5e:00:02:VRID (RFC 5798 7.3),
    fe80::200:5eff:fe00:2XX. That MAC block is IANA's for VRRP alone, so no NIC's own link-local
    (the LAN gateway's included) derives from it; only a VRRP router with the same vrid could."""
    return IPAddress(f"fe80::200:5eff:fe00:2{vrid:02x}")


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

    url: str = key("Kea Control Agent URL (or a Kea >= 3 HTTP control socket)", required=True)
    ssh: str | None = key("reach `url` through this SSH host: for a CA on the Kea host's loopback (Debian's "
                          "default)", default=None)
    user: str | None = key("basic-auth user", default=None)
    password_env: str | None = key("the environment variable holding the password; never printed", default=None)
    password_file: Path | None = key("the file holding the password (relative to the site file); never printed",
                                     default=None)
    subnet_id: int | None = key("the `subnet4` to change", "the `subnet4` whose prefix equals `subnet`",
                                default=None)
    api: str = key("`control-agent` (Kea's CA, commands name `service: [\"dhcp4\"]`) or `direct` (Kea >= 3 "
                   "HTTP control socket)", default="control-agent", choices=("control-agent", "direct"))

    def password(self) -> str | None:
        return read_secret(self.password_env, self.password_file, "kea password")

    def __repr__(self) -> str:  # keep secret locations out of casual logs, too
        return f"KeaEndpoint(url={self.url!r}, user={self.user!r}, subnet_id={self.subnet_id!r}, ssh={self.ssh!r})"


@dataclass(frozen=True)
class Router:
    """One subnet router of a site: its LAN address, how pyinfra reaches it, its tailnet node name."""

    address: IPAddress = key("this router's own LAN address", required=True)
    ssh: str = key("how pyinfra reaches it", "`address`")
    tailnet_node: str | None = key("its node name (or tailnet IP) in the control plane", "the host part of `ssh`",
                                   default=None)


@dataclass(frozen=True)
class AwsSubnet:
    """A site whose LAN is an AWS VPC subnet: step 6 of Tailscale's site-to-site guide done in the
    provider's route tables. Credentials come from boto3's standard chain, never the site file."""

    region: str = key("the VPC's region, e.g. `eu-central-1`", required=True)
    route_tables: tuple[str, ...] = key("`[\"rtb-...\"]`: each sends 100.64.0.0/10 and the other sites to the "
                                        "router", required=True)
    network_interface: str | None = key("the router's interface `eni-...`", "(or `instance`)", default=None)
    instance: str | None = key("the router's instance `i-...` (its primary interface)", "(or `network_interface`)",
                               default=None)
    endpoint_url: str | None = key("an EC2-compatible endpoint (a VPC endpoint; moto's server in the tests)",
                                   "AWS's own", default=None)


MANAGERS = ("networkd", "networkmanager", "ifupdown", "netplan")


@dataclass(frozen=True)
class StaticHost:
    """A LAN host with a static address (step 6 of Tailscale's site-to-site guide, "configure
    the other devices"): it gets the site's routes in its own network manager's config."""

    ssh: str = key("how pyinfra reaches the host", required=True)
    manager: str | None = key("`networkd`, `networkmanager`, `ifupdown` or `netplan`: where its routes are "
                              "written", "detected on the host", default=None, choices=MANAGERS)


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
    subnet: IPNetwork = key("the LAN behind this site's subnet router, IPv4 CIDR without host bits", required=True)
    routers: tuple[Router, ...] = keys(
        Key("router", "the subnet router's LAN address: the next hop pushed to clients", "required (one router)"),
        Key("ssh", "how pyinfra reaches the router, `[user@]host[:port]` or an ssh-config alias (every `ssh` key "
            "takes this form)", "`router`"),
        Key("tailnet_node", "the router's node name (or tailnet IP) in the control plane", "the host part of `ssh`"),
        Key("routers", "an HA site's routers, `[[sites.NAME.routers]]` (two or more), instead of "
            "`router`/`ssh`/`tailnet_node`", ""),
    )
    next_hop: IPAddress
    gateway: IPAddress = key("the LAN's default gateway, sent as `0.0.0.0/0` in option 121", "`router` (HA: required)")
    routes: tuple[IPNetwork, ...] = key("extra prefixes (IPv4 or IPv6) this site's router also advertises",
                                        default=())
    kea: tuple[KeaEndpoint, ...] = key("the site's Kea DHCPv4 server(s): `[sites.NAME.kea]`, or `[[sites.NAME.kea]]` "
                                       "per HA server", "", default=(), kind=(dict, list))
    # [sites.X.dhcp]: extra routes for LAN clients, (prefix, via) pairs
    client_routes: tuple[tuple[IPNetwork, IPAddress], ...] = keys(
        Key("dhcp", "extra routes for the LAN's DHCP clients (`[sites.NAME.dhcp]`)", kind=(dict,), table=(
            Key("client_routes", "extra routes for the LAN's clients, `[{ prefix = \"10.99.0.0/16\", via = "
                "\"192.0.2.9\" }]` (next hop on the LAN); counted by the packet-size guard", kind=(list,), value=(),
                table=(Key("prefix", "the destination, an IPv4 prefix", required=True),
                       Key("via", "the next hop, an address on the LAN", required=True))),
        )),
        default=(),
    )
    vip: IPAddress | None = key("an HA site's VRRP address: the LAN's next hop", "required (HA)", default=None)
    vrid: int = key("an HA site's VRRP virtual router id on its LAN (1-255)", default=DEFAULT_VRID)
    aws: AwsSubnet | None = key("the LAN is an AWS VPC subnet (`[sites.NAME.aws]`)", default=None)
    hosts: tuple[StaticHost, ...] = key("LAN hosts with static addresses, `[[sites.NAME.hosts]]`: given the site "
                                        "routes", default=())
    subnet6: IPNetwork | None = key("the LAN's IPv6 prefix (dual-stack site, global or ULA, no host bits): routes "
                                    "reach IPv6 hosts by router advertisement ([docs/ipv6.md](docs/ipv6.md))",
                                    default=None)
    vip6: IPAddress | None = key("an HA dual-stack site's IPv6 VRRP address, link-local (fe80::/10): the static "
                                 "hosts' IPv6 next hop ([docs/static-hosts.md](docs/static-hosts.md))",
                                 "`fe80::200:5eff:fe00:2XX`, XX = `vrid` in hex (HA with `subnet6`)", default=None)

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


@dataclass(frozen=True, kw_only=True)
class Tailnet:
    """The control plane: Headscale or Tailscale's API, and how routers join it."""

    backend: str = key("`headscale` (REST API >= 0.26) or `tailscale` (API v2)", default="headscale",
                       choices=("headscale", "tailscale"))
    url: str = key("the API base URL", "Tailscale: `https://api.tailscale.com/api/v2`")
    ssh: str | None = key("reach `url` through this SSH host (server on its loopback)", default=None)
    tailnet: str = key("Tailscale tailnet name", default="-")
    api_key_env: str | None = key("the environment variable holding the API key; never printed", default=None)
    api_key_file: Path | None = key("the file holding the API key; never printed", default=None)
    auth_key_env: str | None = key("pre-authorised key for routers joining the first time (environment variable)",
                                   default=None)
    auth_key_file: Path | None = key("the same, from a file (`s2s controlplane authkey --out FILE` mints a tagged "
                                     "one into a 0600 file)", default=None)
    login_server: str | None = key("the control URL routers log in to (Headscale)", "`url`", default=None)
    tag: str = key("the routers' tag (autoApprovers, tagOwners)", default="tag:subnet-router")
    policy_mode: str = key("where the policy lives: `database`/`api`, or `file`",
                           "`database` (Headscale), `api` (Tailscale)", default="database",
                           choices=("database", "file", "api"))
    policy_file: str | None = key("file mode: the policy file", default=None)
    policy_ssh: str | None = key("file mode: the SSH host holding it", default=None)
    policy_syntax: str = key(  # the traffic rules as grants or acls (controlplane.policy)
        "the site rules as `grants` or `acls`; `auto`: grants where the operator's policy has grants, or on an "
        "empty policy when the server has them (Tailscale, Headscale >= 0.29), else acls "
        "([docs/grants.md](docs/grants.md))", default="auto", choices=("auto", "grants", "acls"))

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
    apt_repo: str | None = key("the apt repository (`<ID>` from the router's `/etc/os-release`: `debian` or "
                               "`ubuntu`)", "`https://pkgs.tailscale.com/stable/<ID>`", default=None)
    apt_suite: str | None = key("the suite (Debian 12 `bookworm`, 13 `trixie`; Ubuntu 22.04 `jammy`, 24.04 "
                                "`noble`)", "the router's `VERSION_CODENAME`", default=None)
    apt_component: str = key("the component", default="main")
    apt_key_url: str | None = key("the repository's signing key", "`<repo>/<suite>.noarmor.gpg`", default=None)
    apt_key_file: Path | None = key("a local key file instead, uploaded", default=None)  # ASCII-armoured or binary
    version: str | None = key("pin a Tailscale version", "the newest", default=None)
    no_logs_no_support: bool = key("`true` keeps tailscaled off Tailscale's log servers", default=False)


@dataclass(frozen=True)
class DhcpSettings:
    """How routes are pushed to LAN clients."""

    summaries: tuple[IPNetwork, ...] = key(
        "prefixes to push instead of the individual remote prefixes they cover, or `\"auto\"`: the deploy picks "
        "them so every LAN's option fits ([docs/scale.md](docs/scale.md#auto-summaries))", default=())
    auto_summaries: bool = False  # summaries = "auto": dhcp.summaries picks them to fit every reply
    max_message_size: int = key("the smallest DHCP reply your clients accept (576..1500)", default=576)
    reserved_option_bytes: int = key("room kept for the reply's other options", default=64)
    option_249: bool = key("also send Microsoft's option 249 (same bytes)", default=True)

    @property
    def route_codes(self) -> tuple[int, ...]:
        """The DHCP options that carry the routes: 121 (RFC 3442), and 249 (Microsoft's older
        copy of it, which some Windows clients read) unless turned off."""
        return (121, 249) if self.option_249 else (121,)


@dataclass(frozen=True)
class SshSettings:
    """How pyinfra reaches the hosts (an OpenSSH config file, e.g. the lab's)."""

    config_file: Path | None = key("an OpenSSH config pyinfra and the tunnels use (e.g. the lab's)", default=None)
    user: str | None = key("the SSH user where a target names none", default=None)
    key_file: Path | None = key("the private key", default=None)


@dataclass(frozen=True)
class SiteModel:
    """The whole validated site file."""

    path: Path
    sites: dict[str, Site] = key("one table per site, `[sites.NAME]`, at least two", required=True)
    tailnet: Tailnet | None = key("the control plane (`[tailnet]`)", default=None)
    tailscale: Tailscale = key("where routers install Tailscale from (`[tailscale]`)", default_factory=Tailscale)
    dhcp: DhcpSettings = key("how routes reach DHCP clients (`[dhcp]`)", default_factory=DhcpSettings)
    ssh: SshSettings = key("how pyinfra and the tunnels reach hosts (`[ssh]`)", default_factory=SshSettings)

    def remote_prefixes(self, site: Site) -> tuple[IPNetwork, ...]:
        """What the LAN of `site` reaches through its router: the tailnet's range and every
        other site's prefixes (step 6 of Tailscale's site-to-site guide)."""
        return (TAILSCALE_CGNAT, *(p for other in self.sites.values() if other is not site
                                   for p in other.advertised))
