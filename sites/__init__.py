"""The site model: one validated view of the site file for every other part."""

from sites.load import SiteFileError, load_sites, parse_sites
from sites.model import (
    DhcpSettings,
    KeaEndpoint,
    Router,
    SecretError,
    Site,
    SiteModel,
    SshSettings,
    SshTarget,
    Tailnet,
    Tailscale,
)

__all__ = [
    "DhcpSettings", "KeaEndpoint", "Router", "SecretError", "Site", "SiteFileError", "SiteModel",
    "SshSettings", "SshTarget", "Tailnet", "Tailscale", "load_sites", "parse_sites",
]
