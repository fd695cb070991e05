"""A real Headscale v0.28.0 (no grants; the key `grants` is unknown there): auto writes acls,
asking for grants is one line before anything is written.

Headscale 0.28 is built from its Go module the way lab.gobuild builds the pinned 0.29 (cached
beside it in ~/.cache/s2s). Only the server runs: these decisions name no router.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from controlplane import connect, hujson, policy
from controlplane.policy import PolicyError
from lab.versions import HEADSCALE_028_VERSION
from tests.controlplane.headscale_lab import HeadscaleLab, prerequisites
from tests.support import need

pytestmark = pytest.mark.integration

VERSION = HEADSCALE_028_VERSION


def headscale_028() -> Path:
    from lab import gobuild

    return gobuild.built("headscale", VERSION) / "headscale"


@pytest.fixture(scope="module")
def old_headscale() -> Iterator[HeadscaleLab]:
    reason = prerequisites()
    need(reason and f"real Headscale test skipped: {reason}")
    from lab.gobuild import binary

    tmp = Path(tempfile.mkdtemp(prefix="s2s-cp28-"))
    lab = HeadscaleLab(headscale_028(), binary("tailscale"), binary("tailscaled"), tmp)
    try:
        lab.build_network()
        lab.start_headscale()
        yield lab
    except Exception:
        print(lab.logs())
        raise
    finally:
        lab.stop()


@pytest.fixture(scope="module")
def key(old_headscale) -> str:
    return old_headscale.api_key()


def policy_text(lab, key: str) -> requests.Response:
    return requests.get(lab.api_url + "/api/v1/policy", headers={"Authorization": f"Bearer {key}"},
                        timeout=10)


def test_the_server_is_found_to_have_no_grants(old_headscale, key, make_model):
    cp = connect(make_model("headscale", old_headscale.api_url, key))
    assert cp.server_version() in (VERSION, "dev")  # "dev": a build from the module's source
    assert cp.grants_supported() is False


def test_the_server_rejects_the_grants_key(old_headscale, key):
    resp = requests.put(old_headscale.api_url + "/api/v1/policy", timeout=10,
                        headers={"Authorization": f"Bearer {key}"},
                        json={"policy": '{"grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"]}]}'})
    assert resp.status_code != 200, resp.text


def test_auto_writes_acls_and_the_server_takes_them(old_headscale, key, make_model):
    model = make_model("headscale", old_headscale.api_url, key)
    changes = connect(model).plan(model, routes=False)
    assert changes.policy is not None
    text = changes.policy.after
    assert set(policy.managed(text)) == {"tagOwners", "autoApprovers", "acls"}
    assert "grants" not in hujson.loads(text)
    assert hujson.loads(text)["acls"][0] == {"action": "accept", "src": ["*"], "dst": ["*:*"]}
    assert "The first ACL keeps the no-policy default (every address may reach everything)" in text
    # the deploy's own write: 0.28 has no POST /api/v1/policy/check, so the PUT alone validates
    # (tagOwners and autoApprovers blocks valid there too)
    assert connect(model).apply(changes) == ["policy written"]
    assert policy_text(old_headscale, key).json()["policy"] == text
    assert connect(model).plan(model, routes=False).empty


def test_the_check_says_the_server_ran_no_policy_tests(old_headscale, key, make_model):
    """Before 0.29 the server cannot run a policy's `tests`: check_policy says so (False) rather
    than failing the check or claiming the tests passed."""
    cp = connect(make_model("headscale", old_headscale.api_url, key))
    assert cp.check_policy('{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}') is False


def test_asking_for_grants_is_one_line_and_writes_nothing(old_headscale, key, make_model):
    """(The CLI's one line for it, routers joined, is tested on 0.29: test_headscale_grants.)"""
    before = policy_text(old_headscale, key).json()
    model = make_model("headscale", old_headscale.api_url, key,
                       extra_tailnet='policy_syntax = "grants"')
    says = "tailnet.policy_syntax: the control server does not support grants"
    with pytest.raises(PolicyError, match=says) as exc:
        connect(model).plan(model, routes=False)
    assert "\n" not in str(exc.value)
    assert policy_text(old_headscale, key).json() == before
