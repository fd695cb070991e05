"""cloud.aws against moto's server, the stand-in for AWS (AWS cannot be reached from here).

moto's ThreadedMotoServer listens on 127.0.0.1 only, in this process; boto3 talks real HTTP
to it with the EC2 API, as it would to AWS. Checked: source/destination check off, routes
created, a route of another target refused with nothing changed, a route of ours replaced,
a dropped prefix deleted, other routes and tags untouched, idempotence, removal, and the
errors moto returns for unknown ids, each as one line naming the site file's key. (moto 5.2's
CreateRoute does not refuse a second route of the same prefix, so RouteAlreadyExists, which
the apply would report the same way, is not exercised here.) A site, or a table, dropped from the
site file: the removal run takes out what the applied record says this project added there.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from netaddr import IPAddress, IPNetwork

from cloud import CloudError
from cloud.aws import CHECK_TAG, ROUTE_TAG, AwsVpc
from removal import record
from sites.model import AwsSubnet, Router, Site, SiteModel
from steps.retire import still_recorded_aws
from steps.vpc import apply_clouds, cleaned_tables, plan_clouds, vpc_routes, wanted_routes

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

REGION = "eu-central-1"
WANT = [IPNetwork("100.64.0.0/10"), IPNetwork("192.0.2.0/24")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def vpc(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict:
    """A fresh VPC: a subnet, the router's ENI, a route table with a route of the operator's own."""
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_SESSION_TOKEN": "testing"}.items():
        monkeypatch.setenv(k, v)
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=endpoint)
    vpc_id = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.20.1.0/24")["Subnet"]["SubnetId"]
    eni = ec2.create_network_interface(SubnetId=subnet)["NetworkInterface"]["NetworkInterfaceId"]
    other = ec2.create_network_interface(SubnetId=subnet)["NetworkInterface"]["NetworkInterfaceId"]
    rtb = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=rtb, DestinationCidrBlock="198.51.100.0/24", NetworkInterfaceId=other)
    ec2.create_tags(Resources=[rtb], Tags=[{"Key": "Name", "Value": "operator's table"}])
    aws = AwsSubnet(region=REGION, route_tables=(rtb,), network_interface=eni, endpoint_url=endpoint)
    return {"ec2": ec2, "rtb": rtb, "eni": eni, "other": other, "aws": aws}


def _routes(ec2, rtb: str) -> dict[str, str | None]:
    table = ec2.describe_route_tables(RouteTableIds=[rtb])["RouteTables"][0]
    return {r["DestinationCidrBlock"]: r.get("NetworkInterfaceId") or r.get("GatewayId")
            for r in table["Routes"] if "DestinationCidrBlock" in r}


def _tags(ec2, rtb: str) -> dict[str, str]:
    table = ec2.describe_route_tables(RouteTableIds=[rtb])["RouteTables"][0]
    return {t["Key"]: t["Value"] for t in table.get("Tags", [])}


def _check(ec2, eni: str) -> bool:
    return ec2.describe_network_interface_attribute(NetworkInterfaceId=eni, Attribute="sourceDestCheck")[
        "SourceDestCheck"]["Value"]


def test_deploy_brings_the_vpc_into_line_then_changes_nothing(vpc: dict) -> None:
    ec2, rtb, eni = vpc["ec2"], vpc["rtb"], vpc["eni"]
    cloud = AwsVpc("a", vpc["aws"])
    plan = cloud.plan(WANT)
    assert plan.check_on and [(c.action, c.prefix) for c in plan.routes] == [
        ("create", "100.64.0.0/10"), ("create", "192.0.2.0/24")]
    assert f"{eni} source/destination check: on -> off" in plan.render()
    assert f"{rtb} 192.0.2.0/24: (none) -> {eni}" in plan.render()
    cloud.apply(plan)
    assert _check(ec2, eni) is False
    routes = _routes(ec2, rtb)
    assert routes["100.64.0.0/10"] == eni and routes["192.0.2.0/24"] == eni
    assert routes["198.51.100.0/24"] == vpc["other"]  # the operator's route untouched
    tags = _tags(ec2, rtb)
    assert tags["Name"] == "operator's table" and tags[ROUTE_TAG + "192.0.2.0/24"] == eni
    assert AwsVpc("a", vpc["aws"]).plan(WANT).empty  # a second run changes nothing


def test_another_targets_route_is_refused_and_nothing_changes(vpc: dict) -> None:
    ec2, rtb = vpc["ec2"], vpc["rtb"]
    ec2.create_route(RouteTableId=rtb, DestinationCidrBlock="192.0.2.0/24", NetworkInterfaceId=vpc["other"])
    with pytest.raises(CloudError) as err:
        AwsVpc("a", vpc["aws"]).plan(WANT)
    line = str(err.value)
    assert "\n" not in line and line.startswith(f"sites.a.aws ({vpc['aws'].endpoint_url}): route table {rtb}")
    assert f"sends 192.0.2.0/24 to {vpc['other']}, a route this project did not make; nothing was changed" in line
    assert "100.64.0.0/10" not in _routes(ec2, rtb) and _check(ec2, vpc["eni"]) is True


def test_our_route_pointed_elsewhere_is_replaced_and_a_dropped_prefix_deleted(vpc: dict) -> None:
    ec2, rtb, eni, other = vpc["ec2"], vpc["rtb"], vpc["eni"], vpc["other"]
    cloud = AwsVpc("a", vpc["aws"])
    cloud.apply(cloud.plan(WANT))
    ec2.replace_route(RouteTableId=rtb, DestinationCidrBlock="192.0.2.0/24", NetworkInterfaceId=other)  # drift
    plan = cloud.plan(WANT[:1])  # and 192.0.2.0/24 is no longer wanted
    assert [(c.action, c.prefix) for c in plan.routes] == []  # now someone else's target: only our mark goes
    assert plan.untag == ((rtb, "192.0.2.0/24"),)
    cloud.apply(plan)
    assert _routes(ec2, rtb)["192.0.2.0/24"] == other and ROUTE_TAG + "192.0.2.0/24" not in _tags(ec2, rtb)

    ec2.create_route(RouteTableId=rtb, DestinationCidrBlock="203.0.113.0/24", NetworkInterfaceId=eni)
    cloud.apply(cloud.plan([*WANT[:1], IPNetwork("203.0.113.0/24")]))  # right already, made by the operator
    assert ROUTE_TAG + "203.0.113.0/24" not in _tags(ec2, rtb)  # stays theirs

    ec2.replace_route(RouteTableId=rtb, DestinationCidrBlock="100.64.0.0/10", NetworkInterfaceId=other)
    plan = cloud.plan(WANT[:1])
    assert [(c.action, c.old, c.new) for c in plan.routes] == [("replace", other, eni)]
    cloud.apply(plan)
    assert _routes(ec2, rtb)["100.64.0.0/10"] == eni and cloud.plan(WANT[:1]).empty


def test_removal_takes_out_what_this_project_added(vpc: dict) -> None:
    ec2, rtb, eni = vpc["ec2"], vpc["rtb"], vpc["eni"]
    cloud = AwsVpc("a", vpc["aws"])
    cloud.apply(cloud.plan(WANT))
    done = cloud.remove()
    assert any("source/destination check on again" in d for d in done)
    assert _routes(ec2, rtb) == {"10.20.0.0/16": "local", "198.51.100.0/24": vpc["other"]}
    assert _tags(ec2, rtb) == {"Name": "operator's table"} and _check(ec2, eni) is True
    tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [eni]}])["Tags"]
    assert CHECK_TAG not in {t["Key"] for t in tags}


def test_instance_resolves_to_its_primary_interface(vpc: dict) -> None:
    ec2 = vpc["ec2"]
    image = ec2.describe_images()["Images"][0]["ImageId"]
    subnet = ec2.describe_network_interfaces(NetworkInterfaceIds=[vpc["eni"]])["NetworkInterfaces"][0]["SubnetId"]
    inst = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, SubnetId=subnet)["Instances"][0]
    primary = inst["NetworkInterfaces"][0]["NetworkInterfaceId"]
    aws = AwsSubnet(region=REGION, route_tables=(vpc["rtb"],), instance=inst["InstanceId"],
                    endpoint_url=vpc["aws"].endpoint_url)
    cloud = AwsVpc("a", aws)
    cloud.apply(cloud.plan(WANT))
    assert _routes(ec2, vpc["rtb"])["192.0.2.0/24"] == primary and _check(ec2, primary) is False


@pytest.mark.parametrize(("field", "value", "code"), [
    ("route_tables", ("rtb-0123456789abcdef0",), "InvalidRouteTableID.NotFound"),
    ("instance", "i-0123456789abcdef0", "InvalidInstanceID.NotFound"),
    ("network_interface", "eni-0123456789abcdef0", "InvalidNetworkInterfaceID.NotFound"),
])
def test_unknown_ids_are_one_line_naming_the_site(vpc: dict, field: str, value, code: str) -> None:
    fields = {"region": REGION, "route_tables": vpc["aws"].route_tables, "endpoint_url": vpc["aws"].endpoint_url,
              "network_interface": vpc["eni"], field: value}
    if field == "instance":
        fields["network_interface"] = None
    with pytest.raises(CloudError) as err:
        AwsVpc("b", AwsSubnet(**fields)).plan(WANT)
    assert str(err.value).startswith("sites.b.aws (") and code in str(err.value) and "\n" not in str(err.value)


def test_unreachable_endpoint_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    aws = AwsSubnet(region=REGION, route_tables=("rtb-1",), network_interface="eni-1", endpoint_url=url)
    with pytest.raises(CloudError) as err:
        AwsVpc("a", aws).plan(WANT)
    assert str(err.value).startswith(f"sites.a.aws ({url}): describe_network_interface_attribute") or \
        str(err.value).startswith(f"sites.a.aws ({url}): describe_route_tables")
    assert "testing" not in str(err.value)


# ------------------------------------------------------------------ a site dropped from the site file
# The removal run (`--data prune=true`) finds what to undo in the applied record (removal.record's
# aws_sites): the tables a removed site listed lose the routes this project marked there.


def _model(tmp_path, **aws_sites: AwsSubnet) -> SiteModel:
    """A site model with sites a, b (192.0.2.0/24) and c, each AWS site given its [aws] table."""
    sites = {}
    for i, name in enumerate(("a", "b", "c")):
        subnet = IPNetwork(f"10.{30 + i}.0.0/24")
        hop = IPAddress(subnet.first + 2)
        sites[name] = Site(name, subnet, (Router(hop, f"root@r-{name}"),), hop, IPAddress(subnet.first + 1),
                           aws=aws_sites.get(name))
    return SiteModel(tmp_path / "sites.toml", sites)


def _deployed_on_two_tables(vpc: dict, tmp_path) -> tuple[str, AwsSubnet, SiteModel]:
    """Site a's VPC with a second route table listed, deployed once: (that table, the [aws] table, the model)."""
    ec2, rtb = vpc["ec2"], vpc["rtb"]
    vpc_id = ec2.describe_route_tables(RouteTableIds=[rtb])["RouteTables"][0]["VpcId"]
    rtb2 = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    aws = AwsSubnet(REGION, (rtb, rtb2), vpc["eni"], endpoint_url=vpc["aws"].endpoint_url)
    model = _model(tmp_path, a=aws)
    AwsVpc("a", aws).apply(AwsVpc("a", aws).plan(wanted_routes(model, model.sites["a"])))
    return rtb2, aws, model


def test_a_site_dropped_from_the_site_file_loses_its_routes_in_the_removal_run(vpc: dict, tmp_path) -> None:
    ec2, rtb, eni = vpc["ec2"], vpc["rtb"], vpc["eni"]
    rtb2, _, before = _deployed_on_two_tables(vpc, tmp_path)
    recorded = record.declared_aws(before)
    record.write(record.record_path(before), [], aws_sites=recorded)
    assert record.read_aws(record.record_path(before)) == recorded  # the record round-trips

    after = _model(tmp_path)  # site a's [aws] table dropped from the site file
    gone = record.removed_aws(after, record.read_aws(record.record_path(after)))
    assert gone == recorded and record.whole_site(after, gone[0])
    plan = plan_clouds(after, gone)  # the step's plan, as `--dry --diff` shows it
    text = plan.render()
    assert f"{rtb} 100.64.0.0/10: {eni} -> (deleted)" in text and f"{rtb2} 10.31.0.0/24: {eni} -> (deleted)" in text
    assert f"{eni} source/destination check: off -> on" in text
    cleaned_tables().clear()
    apply_clouds(after, gone)  # the step's apply (the removal run)
    assert _routes(ec2, rtb) == {"10.20.0.0/16": "local", "198.51.100.0/24": vpc["other"]}  # the operator's stays
    assert _routes(ec2, rtb2) == {"10.20.0.0/16": "local"}
    assert _tags(ec2, rtb) == {"Name": "operator's table"} and _check(ec2, eni) is True
    assert plan_clouds(after, gone).empty  # a second removal run changes nothing
    # cleaned: the record forgets it; not cleaned (no prune, or it failed): it stays for the next run
    assert cleaned_tables() == {("a", rtb), ("a", rtb2)}
    assert still_recorded_aws(after, recorded, cleaned_tables()) == []
    assert still_recorded_aws(after, recorded, set()) == recorded


def test_a_table_no_longer_listed_loses_only_its_routes_and_the_check_stays_off(vpc: dict, tmp_path) -> None:
    ec2, rtb, eni = vpc["ec2"], vpc["rtb"], vpc["eni"]
    rtb2, _, before = _deployed_on_two_tables(vpc, tmp_path)
    one = AwsSubnet(REGION, (rtb,), eni, endpoint_url=vpc["aws"].endpoint_url)
    after = _model(tmp_path, a=one)
    gone = record.removed_aws(after, record.declared_aws(before))
    assert [(g.site, g.route_tables) for g in gone] == [("a", (rtb2,))] and not record.whole_site(after, gone[0])
    AwsVpc("a", gone[0].subnet).remove(check=False)
    assert _routes(ec2, rtb2) == {"10.20.0.0/16": "local"}
    assert _routes(ec2, rtb)["100.64.0.0/10"] == eni and _check(ec2, eni) is False  # the listed table stays
    assert AwsVpc("a", one).plan(wanted_routes(after, after.sites["a"])).empty
    # not pruned yet: the record keeps the dropped table beside the listed one
    assert still_recorded_aws(after, record.declared_aws(before), set())[0].route_tables == (rtb, rtb2)


def test_removal_of_a_table_deleted_since_is_not_an_error(vpc: dict, tmp_path) -> None:
    ec2, rtb, eni = vpc["ec2"], vpc["rtb"], vpc["eni"]
    rtb2, aws, _ = _deployed_on_two_tables(vpc, tmp_path)
    for route in ("100.64.0.0/10", "10.31.0.0/24", "10.32.0.0/24"):
        ec2.delete_route(RouteTableId=rtb2, DestinationCidrBlock=route)
    ec2.delete_route_table(RouteTableId=rtb2)  # the operator deleted it before the removal run
    done = AwsVpc("a", aws).remove()
    assert f"{eni}: source/destination check on again" in done and "100.64.0.0/10" not in _routes(ec2, rtb)


def test_the_step_warns_without_prune_and_plans_the_removal_with_it(vpc: dict, tmp_path) -> None:
    from tests.operations.ops_harness import FakeHost, run_op

    ec2, rtb, eni = vpc["ec2"], vpc["rtb"], vpc["eni"]
    before = _model(tmp_path, a=vpc["aws"])
    AwsVpc("a", vpc["aws"]).apply(AwsVpc("a", vpc["aws"]).plan(wanted_routes(before, before.sites["a"])))
    after = _model(tmp_path)
    gone = record.removed_aws(after, record.declared_aws(before))
    h = FakeHost()
    assert run_op(vpc_routes, h, after, coordinating=True, removed=gone, prune=False, prune_command="PRUNE") == []
    assert any(f"no longer declares AWS route tables a ({rtb})" in m and "`PRUNE`" in m for m in h.logs), h.logs
    assert _routes(ec2, rtb)["100.64.0.0/10"] == eni  # a plain deploy changes nothing there
    cmds = run_op(vpc_routes, FakeHost(), after, coordinating=True, removed=gone, prune=True)
    assert len(cmds) == 1  # the apply, planned (--dry shows the plan, the run executes it)
    assert run_op(vpc_routes, FakeHost(), after, coordinating=False, removed=gone, prune=True) == []
