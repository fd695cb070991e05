"""The site file's keys, declared once: validation's key lists and the README's tables come from here.

`sites/load.py` refuses any key not declared for its table (a typo is a one-line error
naming it), and the README's key tables are generated from the same declaration
(`python -m sites --schema`); tests/unit/test_schema.py fails when the README and this
module disagree. Checks beyond "is this key known" (types, ranges, overlaps) stay in
load.py beside the model they build.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Key:
    """One key of a site-file table: its name, its default (or "required"), what it means."""

    name: str
    default: str
    meaning: str


REQUIRED = "required"

SECTIONS: dict[str, tuple[Key, ...]] = {
    "": (
        Key("sites", REQUIRED, "one table per site, `[sites.NAME]`, at least two"),
        Key("tailnet", "", "the control plane (`[tailnet]`)"),
        Key("tailscale", "", "where routers install Tailscale from (`[tailscale]`)"),
        Key("dhcp", "", "how routes reach DHCP clients (`[dhcp]`)"),
        Key("ssh", "", "how pyinfra and the tunnels reach hosts (`[ssh]`)"),
    ),
    "sites.NAME": (
        Key("subnet", REQUIRED, "the LAN behind this site's subnet router, IPv4 CIDR without host bits"),
        Key("router", "required (one router)", "the subnet router's LAN address: the next hop pushed to clients"),
        Key("gateway", "`router` (HA: required)", "the LAN's default gateway, sent as `0.0.0.0/0` in option 121"),
        Key("subnet6", "", "the LAN's IPv6 prefix (dual-stack site, global or ULA, no host bits): routes reach "
            "IPv6 hosts by router advertisement ([docs/ipv6.md](docs/ipv6.md))"),
        Key("routes", "`[]`", "extra prefixes (IPv4 or IPv6) this site's router also advertises"),
        Key("ssh", "`router`", "how pyinfra reaches the router, `[user@]host[:port]` or an ssh-config alias "
            "(every `ssh` key takes this form)"),
        Key("tailnet_node", "the host part of `ssh`", "the router's node name (or tailnet IP) in the control plane"),
        Key("kea", "", "the site's Kea DHCPv4 server(s): `[sites.NAME.kea]`, or `[[sites.NAME.kea]]` per HA server"),
        Key("dhcp", "", "extra routes for the LAN's DHCP clients (`[sites.NAME.dhcp]`)"),
        Key("routers", "", "an HA site's routers, `[[sites.NAME.routers]]` (two or more), instead of "
            "`router`/`ssh`/`tailnet_node`"),
        Key("vip", "required (HA)", "an HA site's VRRP address: the LAN's next hop"),
        Key("vrid", "`51`", "an HA site's VRRP virtual router id on its LAN (1-255)"),
        Key("aws", "", "the LAN is an AWS VPC subnet (`[sites.NAME.aws]`)"),
        Key("hosts", "`[]`", "LAN hosts with static addresses, `[[sites.NAME.hosts]]`: given the site routes"),
    ),
    "sites.NAME.hosts": (
        Key("ssh", REQUIRED, "how pyinfra reaches the host"),
        Key("manager", "detected on the host", "`networkd`, `networkmanager`, `ifupdown` or `netplan`: where "
            "its routes are written"),
    ),
    "sites.NAME.routers": (
        Key("address", REQUIRED, "this router's own LAN address"),
        Key("ssh", "`address`", "how pyinfra reaches it"),
        Key("tailnet_node", "the host part of `ssh`", "its node name (or tailnet IP) in the control plane"),
    ),
    "sites.NAME.kea": (
        Key("url", REQUIRED, "Kea Control Agent URL (or a Kea >= 3 HTTP control socket)"),
        Key("ssh", "", "reach `url` through this SSH host: for a CA on the Kea host's loopback (Debian's default)"),
        Key("user", "", "basic-auth user"),
        Key("password_env", "", "the environment variable holding the password; never printed"),
        Key("password_file", "", "the file holding the password (relative to the site file); never printed"),
        Key("subnet_id", "the `subnet4` whose prefix equals `subnet`", "the `subnet4` to change"),
        Key("api", "`control-agent`", "`control-agent` (Kea's CA, commands name `service: [\"dhcp4\"]`) "
            "or `direct` (Kea >= 3 HTTP control socket)"),
    ),
    "sites.NAME.dhcp": (
        Key("client_routes", "`[]`", "extra routes for the LAN's clients, "
            "`[{ prefix = \"10.99.0.0/16\", via = \"192.0.2.9\" }]` (next hop on the LAN); "
            "counted by the packet-size guard"),
    ),
    "sites.NAME.dhcp.client_routes": (
        Key("prefix", REQUIRED, "the destination, an IPv4 prefix"),
        Key("via", REQUIRED, "the next hop, an address on the LAN"),
    ),
    "sites.NAME.aws": (
        Key("region", REQUIRED, "the VPC's region, e.g. `eu-central-1`"),
        Key("route_tables", REQUIRED, "`[\"rtb-...\"]`: each sends 100.64.0.0/10 and the other sites to the router"),
        Key("network_interface", "(or `instance`)", "the router's interface `eni-...`"),
        Key("instance", "(or `network_interface`)", "the router's instance `i-...` (its primary interface)"),
        Key("endpoint_url", "AWS's own", "an EC2-compatible endpoint (a VPC endpoint; moto's server in the tests)"),
    ),
    "dhcp": (
        Key("summaries", "`[]`", "prefixes to push instead of the individual remote prefixes they cover, or "
            "`\"auto\"`: the deploy picks them so every LAN's option fits "
            "([docs/scale.md](docs/scale.md#auto-summaries))"),
        Key("max_message_size", "`576`", "the smallest DHCP reply your clients accept (576..1500)"),
        Key("reserved_option_bytes", "`64`", "room kept for the reply's other options"),
        Key("option_249", "`true`", "also send Microsoft's option 249 (same bytes)"),
    ),
    "tailnet": (
        Key("backend", "`headscale`", "`headscale` (REST API >= 0.26) or `tailscale` (API v2)"),
        Key("url", "Tailscale: `https://api.tailscale.com/api/v2`", "the API base URL"),
        Key("ssh", "", "reach `url` through this SSH host (server on its loopback)"),
        Key("tailnet", "`-`", "Tailscale tailnet name"),
        Key("api_key_env", "", "the environment variable holding the API key; never printed"),
        Key("api_key_file", "", "the file holding the API key; never printed"),
        Key("auth_key_env", "", "pre-authorised key for routers joining the first time (environment variable)"),
        Key("auth_key_file", "", "the same, from a file (`s2s controlplane authkey --out FILE` mints a tagged "
            "one into a 0600 file)"),
        Key("login_server", "`url`", "the control URL routers log in to (Headscale)"),
        Key("tag", "`tag:subnet-router`", "the routers' tag (autoApprovers, tagOwners)"),
        Key("policy_mode", "`database` (Headscale), `api` (Tailscale)",
            "where the policy lives: `database`/`api`, or `file`"),
        Key("policy_file", "", "file mode: the policy file"),
        Key("policy_ssh", "", "file mode: the SSH host holding it"),
        Key("policy_syntax", "`auto`", "the site rules as `grants` or `acls`; `auto`: grants where the operator's "
            "policy has grants, or on an empty policy when the server has them (Tailscale, Headscale >= 0.29), "
            "else acls ([docs/grants.md](docs/grants.md))"),
    ),
    "tailscale": (
        Key("apt_repo", "`https://pkgs.tailscale.com/stable/<ID>`", "the apt repository (`<ID>` from the router's "
            "`/etc/os-release`: `debian` or `ubuntu`)"),
        Key("apt_suite", "the router's `VERSION_CODENAME`", "the suite (Debian 12 `bookworm`, 13 `trixie`; "
            "Ubuntu 22.04 `jammy`, 24.04 `noble`)"),
        Key("apt_component", "`main`", "the component"),
        Key("apt_key_url", "`<repo>/<suite>.noarmor.gpg`", "the repository's signing key"),
        Key("apt_key_file", "", "a local key file instead, uploaded"),
        Key("version", "the newest", "pin a Tailscale version"),
        Key("no_logs_no_support", "`false`", "`true` keeps tailscaled off Tailscale's log servers"),
    ),
    "ssh": (
        Key("config_file", "", "an OpenSSH config pyinfra and the tunnels use (e.g. the lab's)"),
        Key("user", "", "the SSH user where a target names none"),
        Key("key_file", "", "the private key"),
    ),
}


def keys(section: str) -> tuple[str, ...]:
    """Every key the table `section` may hold (`sites.NAME` for any site's table)."""
    return tuple(k.name for k in SECTIONS[section])


def markdown_table(section: str) -> str:
    """The README's table of one section."""
    rows = ["| key | default | meaning |", "| --- | --- | --- |"]
    rows += [f"| `{k.name}` | {k.default} | {k.meaning} |" for k in SECTIONS[section]]
    return "\n".join(rows) + "\n"


def _marker(section: str) -> str:
    return f"<!-- schema: {section} (generated from sites/schema.py: python -m sites --schema) -->\n"


def with_tables(text: str) -> str:
    """`text` (the README) with every marked table regenerated from SECTIONS."""
    for section in SECTIONS:
        start = _marker(section)
        if start not in text:
            continue
        head, _, rest = text.partition(start)
        _, _, tail = rest.partition("<!-- /schema -->\n")
        text = head + start + markdown_table(section) + "<!-- /schema -->\n" + tail
    return text
