"""Turn a site's `kea` table into a transport: the one place that picks how to reach Kea.

Kept apart so a new way in (an SSH tunnel to a Control Agent on the Kea host's
loopback, for the router-deploy work) plugs in here without touching the push.
"""

from __future__ import annotations

from typing import Callable

from dhcp.kea.transport import (ControlAgentTransport, DirectHttpTransport, KeaError,
                                KeaTransport)
from sites.model import KeaEndpoint

TransportFactory = Callable[[KeaEndpoint], KeaTransport]


class EndpointNotSupported(KeaError):
    """The site file asks for a way to reach Kea that this version cannot do yet."""


def transport_for(endpoint: KeaEndpoint) -> KeaTransport:
    """A transport for one Kea server. Raises sites.model.SecretError when the password's
    env var/file is missing (bad input), EndpointNotSupported for `ssh`."""
    if endpoint.ssh:
        raise EndpointNotSupported(
            f"kea.ssh = {endpoint.ssh!r}: reaching a Control Agent through SSH is not supported "
            "yet; give a kea.url reachable from this machine")
    password = endpoint.password()
    # Kea >= 3.0 servers take commands on their own HTTP socket (no "service" key). The site
    # model has no key for that yet; honour one if it appears.
    api = getattr(endpoint, "api", None) or "control-agent"
    if api == "direct":
        return DirectHttpTransport(endpoint.url, endpoint.user, password)
    return ControlAgentTransport(endpoint.url, endpoint.user, password)
