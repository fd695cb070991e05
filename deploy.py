"""Site-to-site deploy: Tailscale's recipe, one step per line.

    SITES=sites.toml pyinfra inventory.py deploy.py [--dry --diff]

One order, the recipe's numbers in the comments, and why:
- the tailnet policy first: its autoApprovers and tagOwners must exist before a
  router joins with the tag (Tailscale approves routes at join from the
  autoApprovers; a tagged auth key needs the tag owned), and its ACLs allowing
  the site prefixes open nothing by themselves: no packet takes a path until a
  router's routes are approved and a LAN client has a route to it;
- then the routers (forwarding, joined, routes advertised, MSS clamped);
- then their routes approved (they must have joined to be found);
- DHCP last: no LAN client gets a route to a router that is not ready.
controlplane.base.ControlPlane.apply writes in the same order (policy, then routes).
"""

from __future__ import annotations

from pyinfra import host, inventory

from controlplane.policy import PolicySpec
from operations.router import configure_router
from operations.router import read_ahead as read_router_facts
from operations.summary import register as summary_at_the_end
from operations.teardown import removed as router_removed
from pyinfra_internals import current_run, let_others_run, ssh_keepalive, ssh_no_delay
from steps import retire, statichosts, tailnet, vpc
from steps.inputs import (
    is_coordinator,
    kea_hosts_plans,
    kea_plans,
    load_model,
    policy_file,
    prune,
    recorded_aws_sites,
    recorded_routers,
    recorded_static_hosts,
    removed_aws_sites,
    removed_router,
    removed_routers,
    removed_static_host,
    removed_static_hosts,
    router_site,
    static_host,
)
from steps.policy_file import headscale_policy_file

model = load_model()
summary_at_the_end(current_run())  # names every failed host and the state it was left in
# after a real run: what it configured
retire.keep_record(current_run(), model, recorded_routers(), recorded_static_hosts(), recorded_aws_sites())
ssh_no_delay(host)  # no Nagle delay on each SSH exec (docs/noop.md)
ssh_keepalive(host)  # a dead peer is seen within a bound (docs/faults.md)
site = router_site(model, host)
coordinator = is_coordinator(inventory, host)
# pyinfra loads this file for every host at once (one greenlet each). A router sends its one
# batched read first; the other hosts let it go first. The HTTP stack (requests, for Kea and the
# control plane) is imported while the routers work, and the control plane and Kea are read
# meanwhile too: the steps plan from these reads while no command has run (steps/readahead.py).
router = site.router_at(host.data.get("router_ssh")) if site is not None else None  # which of its routers
if site is not None:
    read_router_facts(model, site, router)
else:
    let_others_run()
from steps import kea_push  # noqa: E402 - after the routers' read is on its way (imports requests)

tailnet.read_ahead(model, coordinating=coordinator)  # first: the control server answers slowest (API-key check)
plans = kea_plans(host, coordinator)
host_plans = kea_hosts_plans(host)
kea_push.read_ahead(model, plans, host_plans)
# Every step is called on every host (a no-op where it does not apply): pyinfra orders operations
# by each host's own sequence, so a step called on some hosts only could run out of order.

# 5. Tailnet policy, first (see above): site-to-site ACLs, autoApprovers, the router tag (planned on one host)
tailnet.policy_allows_sites(name="Tailnet policy allows the sites", model=model, coordinating=coordinator)
if policy_file(host):
    headscale_policy_file(name="Headscale policy file allows the sites", path=policy_file(host),
                          spec=PolicySpec.from_model(model))

# 2-3. Each subnet router: Tailscale installed, forwarding on, joined, routes advertised, MSS clamped
if site is not None:
    configure_router(site, model, router=router, prune=prune(host), prune_command=retire.prune_command(model),
                     other_router_removed_now=any(gone.site == site.name for gone in removed_routers(model)))

# 4. Approve the subnet routers' routes (after they joined; planned on one host)
tailnet.routes_approved(name="Subnet routes approved", model=model, coordinating=coordinator)

# Removal run (`--data prune=true`, docs/removal.md): routers the site file no longer declares lose the
# routes this project approved (the policy and Kea steps already follow the site file), then are cleaned up
retire.routes_unapproved(name="Removed routers' routes unapproved", model=model,
                          removed=removed_routers(model), prune=prune(host), coordinating=coordinator)
if removed_router(host) and prune(host):
    router_removed(name="Removed router: logged out, the project's files and units gone",
                   declared_addresses=retire.declared_addresses(model))

# 6. The other LAN devices: on a cloud subnet, the VPC's route tables (planned on one host) ...
vpc.vpc_routes(name="VPC route tables send the other sites to the router", model=model, coordinating=coordinator,
               removed=removed_aws_sites(model), prune=prune(host), prune_command=retire.prune_command(model))
# ... the LAN hosts with static addresses, in their own network manager ...
statichosts.routes_given(name="Static hosts have the site routes", model=model,
                         entry=static_host(model, host), removed=removed_static_host(host),
                         prune=prune(host),
                         gone=removed_static_hosts(model), coordinating=coordinator)
# ... and DHCP option 121/249 from each site's Kea
kea_push.config_writable(name="Kea may persist its config (config-write)", plans=host_plans)
kea_push.routes_pushed(name="Kea hands out the site routes (option 121/249)", model=model, plans=plans)
