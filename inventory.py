"""pyinfra inventory, built from the validated site model (never from the raw file).

The site file is $SITES or ./sites.toml (pyinfra's CLI has no option of ours).
Groups: `static_hosts` (static-address LAN hosts, data `static_site` and `static_ssh`),
`removed_static_hosts` (only with `--data prune=true`: recorded, no longer declared, data
`removed_static`), `routers` (every subnet router of every site; an HA site has several),
`removed_routers` (only with
`--data prune=true`: routers the applied record names but the site file no longer
declares; docs/removal.md), `kea_servers` (hosts whose Kea
Control Agent is reached through SSH), `policy_hosts` (the Headscale host when
its policy lives in a file), `control_hosts` (the host the control server's API
is reached through, [tailnet] ssh).

Each host's data carries its roles (steps.inputs reads them; nothing matches names):
`site` (the site whose router it is) and `router_ssh` (which of its routers), `kea_sites` (sites
whose Kea it runs) and `kea_ssh` (the
[sites.X.kea] ssh targets that name it),
`policy_file` (the Headscale policy file it holds), `control_host` (True).
One host may hold several roles; pyinfra merges their data.
"""

from __future__ import annotations

from typing import Any

from pyinfra_internals import cheaper_operation_calls, keep_bytecode

keep_bytecode()  # before this project's modules load: cache their byte code
cheaper_operation_calls()  # pyinfra's per-operation-call CPU, taken down (docs/scale.md)

from removal.record import prune_requested
from sites.model import SshTarget
from steps.inputs import load_model
from steps.inputs import removed_routers as _removed
from steps.inputs import removed_static_hosts as _removed_static

# validated and route-planned here, before pyinfra connects to anything (deploy.py reuses it)
model = load_model()


def _ssh_data(text: str, **role: Any) -> tuple[str, dict[str, Any]]:
    """pyinfra's name and connection data for an SSH target of the site file, plus its role data."""
    target = SshTarget.parse(text)
    data: dict[str, Any] = dict(role)
    if target.user or model.ssh.user:
        data["ssh_user"] = target.user or model.ssh.user
    if target.port is not None:
        data["ssh_hostname"], data["ssh_port"] = target.host, target.port
    if model.ssh.config_file:
        data["ssh_config_file"] = str(model.ssh.config_file)
    if model.ssh.key_file:
        data["ssh_key"] = str(model.ssh.key_file)
    return target.name, data


_routers: dict[str, dict[str, Any]] = {}
_kea: dict[str, dict[str, Any]] = {}
for _site in model.sites.values():
    for _router in _site.routers:  # one, or every router of an HA site (each configured alike)
        _name, _data = _ssh_data(_router.ssh, site=_site.name, router_ssh=_router.ssh)
        _routers[_name] = _data
    for _server in _site.kea:  # one, or every server of an HA pair
        if _server.ssh:
            _name, _data = _ssh_data(_server.ssh, kea_sites=[], kea_ssh=[])
            _roles = _kea.setdefault(_name, _data)
            if _site.name not in _roles["kea_sites"]:
                _roles["kea_sites"].append(_site.name)
            _roles["kea_ssh"].append(_server.ssh)

routers = list(_routers.items())
# the removal run only: pyinfra hands --data to the hosts after loading this file, hence prune_requested
removed_routers = (
    [_ssh_data(_gone.ssh, removed_router={"site": _gone.site, "ssh": _gone.ssh}) for _gone in _removed(model)]
    if prune_requested()
    else []
)
kea_servers = list(_kea.items())
# static-address LAN hosts ([[sites.X.hosts]]): given the site's routes in their own network manager
static_hosts = [
    _ssh_data(_h.ssh, static_site=_site.name, static_ssh=_h.ssh) for _site in model.sites.values() for _h in _site.hosts
]
removed_static_hosts = (
    [
        _ssh_data(
            _gone.ssh,
            removed_static={"site": _gone.site, "ssh": _gone.ssh, "next_hop": _gone.next_hop, "manager": _gone.manager},
        )
        for _gone in _removed_static(model)
    ]
    if prune_requested()
    else []
)
_tailnet = model.tailnet
policy_hosts = (
    [_ssh_data(_tailnet.policy_ssh, policy_file=_tailnet.policy_file)]
    if _tailnet and _tailnet.policy_mode == "file" and _tailnet.policy_ssh
    else []
)
# the host whose loopback the control server's API listens on: pyinfra connects to it with the
# others (in parallel) and the control-plane steps forward through that connection
control_hosts = [_ssh_data(_tailnet.ssh, control_host=True)] if _tailnet and _tailnet.ssh else []
