"""An AWS VPC brought into line for a site whose LAN is a VPC subnet.

Tailscale's site-to-site guide (https://tailscale.com/kb/1214/site-to-site), step 6, on a
cloud subnet: the provider's route tables send the other sites' prefixes and the tailnet's
100.64.0.0/10 to the subnet router, and the router's interface must forward packets that
are not addressed to it (source/destination check off).

What this project made is marked on the route table itself: one tag per route,
`s2s:route:<prefix>` = the target it set, so a second operator, a later run and the removal
all see the same ownership, with no local record. A route of the same prefix with another
target that carries no such tag is someone else's: the plan refuses it in one line and the
VPC is left untouched. Routes and tags of others are never changed. The interface that had
its check turned off carries `s2s:source-dest-check = turned-off`, so removal turns it on again.

Callers use AwsVpc (plan, apply, remove) and make no raw EC2 calls.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from netaddr import IPNetwork

from cloud import CloudError
from sites.model import AwsSubnet

ROUTE_TAG = "s2s:route:"
CHECK_TAG = "s2s:source-dest-check"
CHECK_TURNED_OFF = "turned-off"
TIMEOUTS = {"connect_timeout": 5, "read_timeout": 15}
RETRIES = {"max_attempts": 3, "mode": "standard"}  # botocore's own bounded retry, throttling included
TARGET_KEYS = ("NetworkInterfaceId", "InstanceId", "GatewayId", "NatGatewayId", "TransitGatewayId",
               "VpcPeeringConnectionId", "LocalGatewayId", "CarrierGatewayId", "EgressOnlyInternetGatewayId",
               "CoreNetworkArn")


@dataclass(frozen=True)
class RouteChange:
    """One route of one table: create, replace (ours, pointing elsewhere now) or delete (ours, unwanted)."""

    table: str
    prefix: str
    action: str  # "create" | "replace" | "delete"
    old: str | None  # the target now (None: no route)
    new: str | None  # the target wanted (None: deleted)

    def render(self) -> str:
        return f"{self.table} {self.prefix}: {self.old or '(none)'} -> {self.new or '(deleted)'}"


@dataclass(frozen=True)
class VpcPlan:
    """Everything one site's VPC needs: the interface's check and each table's routes."""

    site: str
    interface: str
    check_on: bool  # source/destination check is on now (it must go off)
    routes: tuple[RouteChange, ...] = ()
    untag: tuple[tuple[str, str], ...] = field(default=())  # (table, prefix): our tag on a route we no longer own
    restore_check: bool = False  # removal: this project turned the check off, it goes on again

    @property
    def empty(self) -> bool:
        return not (self.check_on or self.routes or self.untag or self.restore_check)

    def render(self) -> str:
        lines = [f"aws {self.site}: {self.interface} source/destination check: on -> off"] if self.check_on else []
        if self.restore_check:
            lines.append(f"aws {self.site}: {self.interface} source/destination check: off -> on")
        lines += [f"aws {self.site}: route {c.render()}" for c in self.routes]
        lines += [f"aws {self.site}: {table} {prefix}: mark removed (the route is no longer ours)"
                  for table, prefix in self.untag]
        return "\n".join(lines)


def _target(route: dict[str, Any]) -> str | None:
    return next((route[k] for k in TARGET_KEYS if route.get(k)), None)


def _prefix(route: dict[str, Any]) -> str | None:
    return route.get("DestinationCidrBlock") or route.get("DestinationIpv6CidrBlock")


def _cidr_key(prefix: str) -> str:
    return "DestinationIpv6CidrBlock" if ":" in prefix else "DestinationCidrBlock"


class AwsVpc:
    """One site's VPC, reached through EC2's API (boto3's credential chain; nothing secret logged)."""

    def __init__(self, site: str, aws: AwsSubnet, client: Any = None):
        self.site, self.aws = site, aws
        self.where = f"sites.{site}.aws ({aws.endpoint_url or 'region ' + aws.region})"
        self._client = client

    # -- the one place EC2 is called -----------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.session.Session().client(
                "ec2", region_name=self.aws.region, endpoint_url=self.aws.endpoint_url,
                config=Config(retries=RETRIES, **TIMEOUTS))
        return self._client

    def _call(self, what: str, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, what)(**kwargs)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            raise CloudError(f"{self.where}: {what}: {err.get('Code', '?')}: "
                             f"{' '.join(str(err.get('Message', '')).split())}") from None
        except BotoCoreError as exc:  # no credentials, endpoint unreachable, timeouts after retries
            raise CloudError(f"{self.where}: {what}: {' '.join(str(exc).split())}") from None

    # -- reads ----------------------------------------------------------------------------------
    def interface(self) -> str:
        """The router's ENI: the given one, else the instance's primary interface (device 0)."""
        if self.aws.network_interface:
            return self.aws.network_interface
        found = self._call("describe_instances", InstanceIds=[self.aws.instance])
        for reservation in found.get("Reservations", []):
            for inst in reservation.get("Instances", []):
                for eni in inst.get("NetworkInterfaces", []):
                    if eni.get("Attachment", {}).get("DeviceIndex") == 0:
                        return eni["NetworkInterfaceId"]
        raise CloudError(f"{self.where}: instance {self.aws.instance} has no primary network interface")

    def check_on(self, eni: str) -> bool:
        found = self._call("describe_network_interface_attribute", NetworkInterfaceId=eni,
                           Attribute="sourceDestCheck")
        return bool(found.get("SourceDestCheck", {}).get("Value", True))

    def tables(self, ids: Iterable[str] | None = None, *, marked: bool = False,
               missing_ok: bool = False) -> list[dict[str, Any]]:
        """The route tables named (all of them must exist, unless `missing_ok`: a removed site's
        table may have been deleted since), or every one that carries a mark of ours."""
        if missing_ok:
            found = self._call("describe_route_tables", Filters=[{"Name": "route-table-id", "Values": list(ids or [])}])
            return found.get("RouteTables", [])
        if marked:
            found = self._call("describe_route_tables", Filters=[{"Name": "tag-key", "Values": [ROUTE_TAG + "*"]}])
            tables = found.get("RouteTables", [])
            # a stand-in may ignore the wildcard: keep only tables that really carry our mark
            return [t for t in tables if any(tag["Key"].startswith(ROUTE_TAG) for tag in t.get("Tags", []))]
        return self._call("describe_route_tables", RouteTableIds=list(ids or [])).get("RouteTables", [])

    # -- deciding -------------------------------------------------------------------------------
    def plan(self, wanted: Iterable[IPNetwork]) -> VpcPlan:
        """Reads only. Raises CloudError, before anything is written, when a wanted prefix is
        routed elsewhere by a route this project did not make."""
        eni = self.interface()
        want = [str(p) for p in wanted]
        changes: list[RouteChange] = []
        untag: list[tuple[str, str]] = []
        for table in self.tables(self.aws.route_tables):
            table_changes, table_untag = self._table_changes(table, want, eni)
            changes += table_changes
            untag += table_untag
        return VpcPlan(self.site, eni, self.check_on(eni), tuple(changes), tuple(untag))

    def _table_changes(self, table: dict[str, Any], want: list[str], eni: str
                       ) -> tuple[list[RouteChange], list[tuple[str, str]]]:
        rtb = table["RouteTableId"]
        routes = {p: r for r in table.get("Routes", []) if (p := _prefix(r))}
        ours = {t["Key"][len(ROUTE_TAG):]: t["Value"] for t in table.get("Tags", []) if t["Key"].startswith(ROUTE_TAG)}
        changes: list[RouteChange] = []
        untag: list[tuple[str, str]] = []
        for prefix in want:
            route = routes.get(prefix)
            now = _target(route) if route else None
            if route is not None and route.get("NetworkInterfaceId") == eni:
                continue  # already right (made by someone else: stays theirs, removal leaves it)
            if route is None:
                changes.append(RouteChange(rtb, prefix, "create", None, eni))
            elif prefix in ours:
                changes.append(RouteChange(rtb, prefix, "replace", now, eni))
            else:
                raise CloudError(f"{self.where}: route table {rtb} sends {prefix} to {now}, a route this "
                                 f"project did not make; nothing was changed (delete it, or leave {prefix} "
                                 "out of this site's tables)")
        for prefix, target in ours.items():
            if prefix in want:
                continue
            route = routes.get(prefix)
            if route is not None and _target(route) == target:
                changes.append(RouteChange(rtb, prefix, "delete", target, None))
            else:  # gone, or pointed elsewhere by someone since: only our mark goes
                untag.append((rtb, prefix))
        return changes, untag

    # -- writing --------------------------------------------------------------------------------
    def apply(self, plan: VpcPlan) -> list[str]:
        """Write a plan (made just before, against the live VPC); returns what was done."""
        done: list[str] = []
        if plan.check_on:
            self._call("modify_network_interface_attribute", NetworkInterfaceId=plan.interface,
                       SourceDestCheck={"Value": False})
            self._call("create_tags", Resources=[plan.interface], Tags=[{"Key": CHECK_TAG, "Value": CHECK_TURNED_OFF}])
            done.append(f"{plan.interface}: source/destination check off")
        for c in plan.routes:
            key = {_cidr_key(c.prefix): c.prefix}
            tag = [{"Key": ROUTE_TAG + c.prefix}]
            if c.action == "create":
                # the mark first: a run cut off between the two leaves a mark on our own prefix, and
                # the next run then creates (no route) or replaces (ours) the route, never refuses it
                self._call("create_tags", Resources=[c.table], Tags=[{**tag[0], "Value": c.new}])
                self._call("create_route", RouteTableId=c.table, NetworkInterfaceId=c.new, **key)
            elif c.action == "replace":
                self._call("replace_route", RouteTableId=c.table, NetworkInterfaceId=c.new, **key)
                self._call("create_tags", Resources=[c.table], Tags=[{**tag[0], "Value": c.new}])
            else:
                self._call("delete_route", RouteTableId=c.table, **key)
                self._call("delete_tags", Resources=[c.table], Tags=tag)
            done.append(f"route {c.render()}")
        for table, prefix in plan.untag:
            self._call("delete_tags", Resources=[table], Tags=[{"Key": ROUTE_TAG + prefix}])
            done.append(f"{table} {prefix}: mark removed")
        if plan.restore_check:
            self._call("modify_network_interface_attribute", NetworkInterfaceId=plan.interface,
                       SourceDestCheck={"Value": True})
            self._call("delete_tags", Resources=[plan.interface], Tags=[{"Key": CHECK_TAG}])
            done.append(f"{plan.interface}: source/destination check on again")
        return done

    def plan_removal(self, tables: Iterable[str] | None = None, *, check: bool = True) -> VpcPlan:
        """Reads only: every route this project made in `tables` (default: the site's) deleted, and,
        with `check`, the interface's check turned on again if this project turned it off."""
        changes: list[RouteChange] = []
        untag: list[tuple[str, str]] = []
        for table in self.tables(self.aws.route_tables if tables is None else tables, missing_ok=True):
            table_changes, table_untag = self._table_changes(table, [], "")
            changes += table_changes
            untag += table_untag
        eni, restore = "", False
        if check and (self.aws.network_interface or self.aws.instance):
            try:
                eni = self.interface()
            except CloudError:  # the instance is gone since: no interface left to turn the check on for
                return VpcPlan(self.site, "", False, tuple(changes), tuple(untag))
            tags = self._call("describe_tags", Filters=[{"Name": "resource-id", "Values": [eni]},
                                                          {"Name": "key", "Values": [CHECK_TAG]}]).get("Tags", [])
            restore = any(t.get("Value") == CHECK_TURNED_OFF for t in tags)
        return VpcPlan(self.site, eni, False, tuple(changes), tuple(untag), restore_check=restore)

    def remove(self, tables: Iterable[str] | None = None, *, check: bool = True) -> list[str]:
        """Removal: plan_removal's plan, made against the live VPC and written."""
        return self.apply(self.plan_removal(tables, check=check))
