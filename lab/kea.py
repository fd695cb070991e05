"""Kea's configs, written once: kea-dhcp4 for one LAN and the Control Agent in front of it.

The namespace lab's gateways (lab/roles.py), the Vagrant labs (through
`python -m lab.vagrant render`) and the real-Kea test harness (tests/kea/harness.py)
all start from these, so the form each Kea release takes (2.x one `control-socket`
map, 3.0 a `control-sockets` list, which also carries the HTTP socket Kea >= 3 is
reached on without a Control Agent) is decided in one place. Callers add what is
theirs (a test's reservation, an HA hook) to the returned dict.
"""

from __future__ import annotations

from typing import Any

SOCKET = "/run/kea/kea4-ctrl-socket"  # Debian's RuntimeDirectory (0750 on 2.6/3.0, which they insist on)
CA_PORT = 8000  # Debian's kea-ctrl-agent.conf default, on the Kea host's loopback


def version_tuple(version: str) -> tuple[int, int]:
    """("2.2" | "2.6.3" | "3.0") -> (major, minor)."""
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def basic_auth(user: str, password_file: str, realm: str = "kea-control-agent",
               directory: str | None = None) -> dict[str, Any]:
    """HTTP basic auth with the password read from a file (never in the config itself)."""
    auth: dict[str, Any] = {"type": "basic", "realm": realm}
    if directory is not None:
        auth["directory"] = directory
    auth["clients"] = [{"user": user, "password-file": password_file}]
    return auth


def control_sockets(version: str, socket_name: str = SOCKET,
                    http: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Dhcp4 control socket key(s) the release takes; `http` (a socket map, Kea >= 3.0
    only) is added to the list."""
    unix = {"socket-type": "unix", "socket-name": socket_name}
    if version_tuple(version) < (3, 0):
        if http is not None:
            raise ValueError(f"Kea {version} has no HTTP control socket")
        return {"control-socket": unix}
    return {"control-sockets": [unix, *([http] if http is not None else [])]}


def http_socket(auth: dict[str, Any], port: int, address: str = "127.0.0.1") -> dict[str, Any]:
    """kea-dhcp4's own HTTP control socket (Kea >= 3.0): what the push reaches without a CA."""
    return {"socket-type": "http", "socket-address": address, "socket-port": port, "authentication": auth}


def dhcp4_config(version: str, *, interface: str, subnet: str, pool: str, router: str,
                 subnet_id: int = 1, valid_lifetime: int = 600, timers: dict[str, int] | None = None,
                 socket_name: str = SOCKET, http: dict[str, Any] | None = None,
                 lease_database: dict[str, Any] | None = None, log_output: str = "stdout") -> dict[str, Any]:
    """kea-dhcp4.conf serving one LAN: `subnet` with `pool`, option 3 (routers) = `router`.

    + timers: renew-timer / rebind-timer (default: Kea's, from valid_lifetime)
    + lease_database: default memfile with hourly cleanup
    + log_output: "stdout" (journal under systemd), "syslog" or a file path
    """
    return {"Dhcp4": {
        "interfaces-config": {"interfaces": [interface]},
        **control_sockets(version, socket_name, http),
        "lease-database": lease_database or {"type": "memfile", "lfc-interval": 3600},
        "valid-lifetime": valid_lifetime, **(timers or {}),
        "subnet4": [{
            "id": subnet_id, "subnet": subnet,
            "pools": [{"pool": pool}],
            "option-data": [{"name": "routers", "data": router}],
        }],
        "loggers": [{"name": "kea-dhcp4", "output_options": [{"output": log_output}], "severity": "INFO"}],
    }}


def ctrl_agent_config(auth: dict[str, Any], *, socket_name: str = SOCKET, port: int = CA_PORT,
                      log_output: str = "stdout") -> dict[str, Any]:
    """kea-ctrl-agent on loopback with `auth`, in front of kea-dhcp4's unix socket (2.2, 2.6
    and 3.0 take the same form)."""
    return {"Control-agent": {
        "http-host": "127.0.0.1", "http-port": port,
        "authentication": auth,
        "control-sockets": {"dhcp4": {"socket-type": "unix", "socket-name": socket_name}},
        "loggers": [{"name": "kea-ctrl-agent", "output_options": [{"output": log_output}], "severity": "INFO"}],
    }}
