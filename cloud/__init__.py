"""Cloud subnets: step 6 of Tailscale's site-to-site guide ("Site-to-site networking",
https://tailscale.com/kb/1214/site-to-site) where the LAN is a provider's subnet, whose
devices follow the provider's route tables rather than DHCP option 121.

One module per provider, each offering the same pair as the control plane and Kea: a plan
that only reads (`.empty`, `.render()`), and an apply that re-plans against the live
provider and writes. Only AWS is built (cloud.aws); a GCP route with next_hop_instance or an
Azure route table with a VirtualAppliance next hop would sit beside it with the same shape.
"""

from __future__ import annotations


class CloudError(Exception):
    """A provider call failed or the provider's state forbids the change: one line naming the
    site file's key (sites.X.aws), the endpoint and what was and was not changed."""
