"""pyinfra inventory, built from the validated site model (never from the raw file).

The site file is $SITES or ./sites.toml (pyinfra's CLI has no option of ours).
Groups: `routers` (one subnet router per site), `kea_servers` (hosts whose Kea
Control Agent is reached through SSH), `policy_hosts` (the Headscale host when
its policy lives in a file), `control_hosts` (the host the control server's API
is reached through, [tailnet] ssh).
"""

from __future__ import annotations

from typing import Any

from steps.inputs import load_model

# validated and route-planned here, before pyinfra connects to anything (deploy.py reuses it)
model = load_model()


def _ssh_data(target: str) -> tuple[str, dict[str, Any]]:
    """Split `user@host` into pyinfra's host name and connection data."""
    user, _, name = target.rpartition("@")
    data: dict[str, Any] = {}
    if user or model.ssh.user:
        data["ssh_user"] = user or model.ssh.user
    if model.ssh.config_file:
        data["ssh_config_file"] = str(model.ssh.config_file)
    if model.ssh.key_file:
        data["ssh_key"] = str(model.ssh.key_file)
    return name, data


def _group(entries: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(name, data) for name, data in entries.items()]


_routers: dict[str, dict[str, Any]] = {}
_kea: dict[str, dict[str, Any]] = {}
for _site in model.sites.values():
    _name, _data = _ssh_data(_site.ssh)
    _routers[_name] = {**_data, "site": _site.name}
    for _server in _site.kea_servers:  # one, or every server of an HA pair
        if _server.ssh:
            _name, _data = _ssh_data(_server.ssh)
            _sites = _kea.setdefault(_name, {**_data, "kea_sites": []})["kea_sites"]
            if _site.name not in _sites:
                _sites.append(_site.name)

routers = _group(_routers)
kea_servers = _group(_kea)
policy_hosts = (
    [_ssh_data(model.tailnet.policy_ssh)]
    if model.tailnet and model.tailnet.policy_mode == "file" and model.tailnet.policy_ssh
    else []
)
# the host whose loopback the control server's API listens on: pyinfra connects to it with the
# others (in parallel) and the control-plane steps forward through that connection
control_hosts = [_ssh_data(model.tailnet.ssh)] if model.tailnet and model.tailnet.ssh else []
