"""The Headscale backend against a real Headscale v0.29.0 with real tailscaled routers.

Order matters inside this module (one lab for all): the hand-written policy and
the foreign route approval are set up first, then plan/apply/re-run, then the
failure cases, which must leave that state untouched.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from controlplane import ControlPlaneError, UnknownRouterError, connect, policy
from controlplane.cli import run
from controlplane.http import AuthError, Unreachable
from tests.controlplane.headscale_lab import HeadscaleLab
from tests.support import free_port

pytestmark = pytest.mark.integration

HAND_POLICY = """// Hand-written by the admin: keep me.
{
  "groups": {
    "group:ops": ["lab@"], // the ops team
  },
  "acls": [
    // ops may reach everything
    {"action": "accept", "src": ["group:ops"], "dst": ["*:*"]},
  ],
}
"""


def api(lab, key: str, method: str, path: str, **kw) -> requests.Response:
    resp = requests.request(method, lab.api_url + path, headers={"Authorization": f"Bearer {key}"}, timeout=10, **kw)
    resp.raise_for_status()
    return resp


def node(lab, key: str, name: str) -> dict:
    return next(n for n in api(lab, key, "GET", "/api/v1/node").json()["nodes"] if n["name"] == name)


def approved(lab, key: str) -> dict[str, list[str]]:
    return {n["name"]: sorted(n["approvedRoutes"]) for n in api(lab, key, "GET", "/api/v1/node").json()["nodes"]}


def wait_advertised(lab, key: str) -> None:
    from tests.support import wait_for

    wait_for("routes advertised", lambda: set(node(lab, key, "sc-ra")["availableRoutes"]) >= {"192.0.2.0/24"}
             and set(node(lab, key, "sc-rb")["availableRoutes"]) >= {"172.16.100.0/24", "10.99.0.0/16"})


@pytest.fixture(scope="module")
def key(headscale_lab) -> str:
    k = headscale_lab.api_key()
    wait_advertised(headscale_lab, k)
    # the administrator's own state, before this project runs
    api(headscale_lab, k, "PUT", "/api/v1/policy", json={"policy": HAND_POLICY})
    ra = node(headscale_lab, k, "sc-ra")
    api(headscale_lab, k, "POST", f"/api/v1/node/{ra['id']}/approve_routes", json={"routes": ["203.0.113.0/24"]})
    return k


def test_plan_shows_routes_and_policy_diff_without_secrets(headscale_lab, key, make_model, capsys):
    model = make_model("headscale", headscale_lab.api_url, key)
    assert run(model, "plan") == 0
    out = capsys.readouterr()
    assert "site a: router sc-ra" in out.out and "approve 192.0.2.0/24" in out.out
    assert "approve 10.99.0.0/16, 172.16.100.0/24" in out.out
    assert "kept (approved by someone else): 203.0.113.0/24" in out.out
    assert "+    // BEGIN s2s-controlplane acls" in out.out
    assert key not in out.out + out.err
    # plan wrote nothing
    assert api(headscale_lab, key, "GET", "/api/v1/policy").json()["policy"] == HAND_POLICY
    assert node(headscale_lab, key, "sc-ra")["approvedRoutes"] == ["203.0.113.0/24"]


def test_apply_approves_ours_keeps_foreign_route_and_hand_policy(headscale_lab, key, make_model, capsys):
    model = make_model("headscale", headscale_lab.api_url, key)
    assert run(model, "apply") == 0
    ra, rb = node(headscale_lab, key, "sc-ra"), node(headscale_lab, key, "sc-rb")
    assert sorted(ra["approvedRoutes"]) == ["192.0.2.0/24", "203.0.113.0/24"]  # not ours: stays
    assert sorted(rb["approvedRoutes"]) == ["10.99.0.0/16", "172.16.100.0/24"]
    # Headscale now serves them (primary routes), so the approval took effect
    assert "192.0.2.0/24" in node(headscale_lab, key, "sc-ra")["subnetRoutes"]
    text = api(headscale_lab, key, "GET", "/api/v1/policy").json()["policy"]
    for hand in ("// Hand-written by the admin: keep me.", '"group:ops": ["lab@"], // the ops team',
                 "// ops may reach everything", '{"action": "accept", "src": ["group:ops"], "dst": ["*:*"]},'):
        assert hand in text
    blocks = policy.managed(text)
    assert blocks["tagOwners"] == ['"tag:subnet-router": [],']
    assert '"192.0.2.0/24": ["tag:subnet-router"],' in blocks["autoApprovers"]
    assert any('"src": ["192.0.2.0/24"]' in line and "172.16.100.0/24:*" in line for line in blocks["acls"])
    assert key not in capsys.readouterr().out


def test_rerun_changes_nothing(headscale_lab, key, make_model, capsys):
    model = make_model("headscale", headscale_lab.api_url, key)
    before = api(headscale_lab, key, "GET", "/api/v1/policy").json()
    cp = connect(model)
    changes = cp.plan(model)
    assert changes.empty, changes.render()
    assert run(model, "apply") == 0
    assert "nothing to do" in capsys.readouterr().out
    after = api(headscale_lab, key, "GET", "/api/v1/policy").json()
    assert after == before  # same text, same updatedAt: not even rewritten


def test_a_router_that_re_advertises_is_approved_by_one_plan_and_apply(headscale_lab, key, make_model):
    """The deploy's order: the router re-advertises (tailscale set), then at once the approval step,
    told that router changed (settle), approves the new prefix: no second deploy needed.

    The router's packets to Headscale are held back (DROP in its own namespace) for 2 s after the
    `tailscale set`, so Headscale surely still holds the old route list when the plan starts: a
    plan without settle would approve nothing new (the race a loaded deploy machine can lose).
    """
    import threading

    from tests.controlplane.conftest import SITES
    from tests.controlplane.headscale_lab import HS_ADDR, NS_RB
    from tests.support import sh

    extra = "10.98.0.0/16"
    sites = {**SITES, "b": {**SITES["b"], "routes": ["10.99.0.0/16", extra]}}
    model = make_model("headscale", headscale_lab.api_url, key, sites=sites)
    rb = node(headscale_lab, key, "sc-rb")
    ns = headscale_lab.ns[NS_RB]
    hold = ["OUTPUT", "-d", HS_ADDR, "-j", "DROP"]
    sh("ip", "netns", "exec", ns, "iptables", "-I", *hold)
    release = threading.Timer(2.0, sh, ("ip", "netns", "exec", ns, "iptables", "-D", *hold))
    try:
        headscale_lab.ts(NS_RB, "set", f"--advertise-routes=172.16.100.0/24,10.99.0.0/16,{extra}")
        release.start()
        cp = connect(model)
        assert extra not in node(headscale_lab, key, "sc-rb")["availableRoutes"]  # not seen yet
        changes = cp.plan(model, policy=False, settle=["b"])
        cp.apply(changes)
        assert extra in node(headscale_lab, key, "sc-rb")["approvedRoutes"], changes.render()
        assert connect(model).plan(model, policy=False).empty
    finally:  # back to the module's state for the tests below
        release.cancel()
        if release.ident is not None:
            release.join()
        sh("ip", "netns", "exec", ns, "iptables", "-D", *hold, check=False)
        headscale_lab.ts(NS_RB, "set", "--advertise-routes=172.16.100.0/24,10.99.0.0/16")
        api(headscale_lab, key, "POST", f"/api/v1/node/{rb['id']}/approve_routes",
            json={"routes": rb["approvedRoutes"]})


def test_unknown_router_is_one_line_error_and_writes_nothing(headscale_lab, key, make_model, capsys):
    sites = {
        "a": {"subnet": "192.0.2.0/24", "router": "192.0.2.2", "ssh": "root@sc-ra"},
        "c": {"subnet": "198.18.0.0/24", "router": "198.18.0.2", "ssh": "root@sc-rc"},  # never joined
    }
    model = make_model("headscale", headscale_lab.api_url, key, sites=sites)
    before_policy = api(headscale_lab, key, "GET", "/api/v1/policy").json()
    before_routes = approved(headscale_lab, key)
    with pytest.raises(UnknownRouterError):
        connect(model).plan(model)
    assert run(model, "apply") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'sc-rc' is not registered" in err
    assert api(headscale_lab, key, "GET", "/api/v1/policy").json() == before_policy
    assert approved(headscale_lab, key) == before_routes


def test_wrong_api_key_is_one_line_error(headscale_lab, key, make_model, capsys):
    bad = "hskey-api-WRONGWRONGWRONG-" + "x" * 40
    model = make_model("headscale", headscale_lab.api_url, bad)
    with pytest.raises(AuthError):
        connect(model).plan(model)
    assert run(model, "apply") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "HTTP 401" in err and bad not in err


def test_unreachable_server_is_one_line_error(make_model, capsys):
    model = make_model("headscale", f"http://127.0.0.1:{free_port()}", "hskey-api-whatever")
    with pytest.raises(Unreachable):
        connect(model, timeout=3).plan(model)
    assert run(model, "apply", timeout=3) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot reach the control server" in err


def test_cli_entry_point_exit_codes(headscale_lab, key, make_model, tmp_path):
    model = make_model("headscale", headscale_lab.api_url, key)
    ok = subprocess.run([sys.executable, "-m", "controlplane", "apply", "--dry-run", "--sites", str(model.path)],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "policy: no change" in ok.stdout and key not in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(model.path.read_text().replace('subnet = "192.0.2.0/24"', 'subnet = "192.0.2.0/33"'))
    res = subprocess.run([sys.executable, "-m", "controlplane", "plan", "--sites", str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "subnet" in res.stderr


def test_headscale_rejecting_policy_writes_nothing(headscale_lab, key, make_model):
    """A policy Headscale refuses (checked before any write) leaves routes and policy as they were."""
    model = make_model("headscale", headscale_lab.api_url, key)
    cp = connect(model)
    before = api(headscale_lab, key, "GET", "/api/v1/policy").json()
    with pytest.raises(ControlPlaneError, match="policy rejected by headscale"):
        cp.check_policy('{"acls": [{"action": "accept", "src": ["*"], "dst": ["no-port"]}]}')
    assert api(headscale_lab, key, "GET", "/api/v1/policy").json() == before


def test_tagged_auth_key_is_minted_and_usable(headscale_lab, key, make_model):
    model = make_model("headscale", headscale_lab.api_url, key)
    cp = connect(model)
    auth = cp.create_auth_key([model.tailnet.tag])  # what `python -m controlplane authkey` calls
    assert auth.startswith("hskey-auth-") and auth not in repr(cp)
    keys = api(headscale_lab, key, "GET", "/api/v1/preauthkey").json()["preAuthKeys"]
    assert any(k["aclTags"] == ["tag:subnet-router"] and not k["reusable"] for k in keys)


# --- two operators at once (issue 20): Headscale's policy API has no ETag -------------------------

def _hand_only(headscale_lab: HeadscaleLab, key: str, extra: str = "") -> str:
    """The admin's own policy again (this project's blocks gone), with `extra` added: a plan now
    has a policy write to make."""
    mark = "  // ops may reach everything"
    text = HAND_POLICY.replace(mark, f"  {extra}\n{mark}" if extra else mark)
    api(headscale_lab, key, "PUT", "/api/v1/policy", json={"policy": text})
    return text


def _policy(headscale_lab: HeadscaleLab, key: str) -> str:
    return api(headscale_lab, key, "GET", "/api/v1/policy").json()["policy"]


def test_hand_edit_between_plan_and_write_is_merged_not_lost(headscale_lab: HeadscaleLab, key: str,
                                                             make_model: Callable) -> None:
    model = make_model("headscale", headscale_lab.api_url, key)
    _hand_only(headscale_lab, key)
    cp = connect(model)
    changes = cp.plan(model)
    assert changes.policy is not None
    # the other operator, after the deploy read the policy
    _hand_only(headscale_lab, key, "// edited by hand after the deploy read the policy")
    done = cp.apply(changes)
    text = _policy(headscale_lab, key)
    assert "// edited by hand after the deploy read the policy" in text
    assert "BEGIN s2s-controlplane acls" in text
    assert "// Hand-written by the admin: keep me." in text
    assert any("concurrent edit" in line for line in done), done
    assert connect(model).plan(model).empty


def test_a_write_landing_just_after_ours_is_read_back_and_re_merged(
        headscale_lab: HeadscaleLab, key: str, make_model: Callable) -> None:
    """Another operator's write from a read older than ours lands right after our PUT (a real PUT to
    the real server): it drops our blocks. The read-back sees that; ours is merged into theirs."""
    model = make_model("headscale", headscale_lab.api_url, key)
    stale = _hand_only(headscale_lab, key, "// written by someone who read before the deploy wrote")
    _hand_only(headscale_lab, key)
    cp = connect(model)
    changes = cp.plan(model)
    real_call, landed = cp.api.call, []

    def call(method: str, path: str, **kw: object) -> requests.Response:
        resp = real_call(method, path, **kw)
        if method == "PUT" and not landed:
            landed.append(True)
            api(headscale_lab, key, "PUT", "/api/v1/policy", json={"policy": stale})
        return resp

    cp.api.call = call  # type: ignore[method-assign]
    done = cp.apply(changes)
    text = _policy(headscale_lab, key)
    assert landed and "// written by someone who read before the deploy wrote" in text
    assert "BEGIN s2s-controlplane acls" in text, text
    assert any("concurrent edit" in line for line in done), done


def test_two_applies_at_once_wait_for_each_other_and_keep_a_hand_edit(
        headscale_lab: HeadscaleLab, key: str, make_model: Callable, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two `python -m controlplane apply` started together while a third party holds the policy
    lock; the admin edits the policy meanwhile; both then write in turn, the edit and our blocks
    kept."""
    from controlplane.lock import lock_key, policy_lock
    from tests.support import wait_for

    monkeypatch.setenv("S2S_LOCK_DIR", str(tmp_path / "locks"))
    model = make_model("headscale", headscale_lab.api_url, key)
    _hand_only(headscale_lab, key)
    cmd = [sys.executable, "-m", "controlplane", "apply", "--sites", str(model.path)]
    errs = [tmp_path / f"apply{i}.err" for i in range(2)]
    with policy_lock(lock_key(model), "test"):
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err.open("w"), text=True)
                 for err in errs]
        # each says so when it finds the lock taken: it has planned from the text before the edit
        wait_for("both applies wait on the lock", lambda: all(
            "waiting for another deploy's policy write" in e.read_text() for e in errs), 60)
        _hand_only(headscale_lab, key, "// edited by hand while two deploys ran")
    outs = [p.communicate(timeout=120)[0] + e.read_text() for p, e in zip(procs, errs, strict=True)]
    assert [p.returncode for p in procs] == [0, 0], outs
    text = _policy(headscale_lab, key)
    assert "// edited by hand while two deploys ran" in text
    assert text.count("BEGIN s2s-controlplane acls") == 1
    assert connect(model).plan(model).empty
