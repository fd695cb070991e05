"""Test-only pyinfra deploy: configure_router for each router host (the lead's deploy.py does more)."""

from pyinfra import host

from operations.router import configure_router
from sites.cli import load_or_exit

model = load_or_exit(None)
if host.data.get("site"):
    configure_router(model.sites[host.data.get("site")], model)
