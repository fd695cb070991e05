"""Bad input exits 2 with one line before anything is contacted; the picture's DOT names every site."""

from __future__ import annotations

import html
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from check.graph import GraphError, dot_source, render_svg
from check.judge import judge
from tests.check.test_judge import healthy

REPO = Path(__file__).resolve().parents[2]


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "check", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_bad_site_file_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "sites.toml"
    bad.write_text(
        '[sites.a]\nsubnet = "192.0.2.0/24"\nrouter = "198.51.100.2"\n'
        '[sites.b]\nsubnet = "172.16.100.0/24"\nrouter = "172.16.100.2"\n'
    )
    result = run("--sites", str(bad))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "sites.a.router: outside the site's subnet" in result.stderr


def test_missing_site_file_exit_2(tmp_path):
    result = run("--sites", str(tmp_path / "nope.toml"))
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr


def test_svg_into_a_missing_directory_exit_2(tmp_path):
    good = tmp_path / "sites.toml"
    good.write_text(
        '[sites.a]\nsubnet = "192.0.2.0/24"\nrouter = "192.0.2.2"\n'
        '[sites.b]\nsubnet = "172.16.100.0/24"\nrouter = "172.16.100.2"\n'
    )
    result = run("--sites", str(good), "--svg", str(tmp_path / "no" / "x.svg"))
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"error: --svg: {tmp_path / 'no'} is not a directory (got '{tmp_path / 'no' / 'x.svg'}')"
    )


def test_dot_source_names_every_site_and_colours_the_broken_one():
    m, plans, routers, control = healthy()
    routers["a"].forwarding = {"net.ipv4.ip_forward": "0"}
    rows = judge(m, plans, routers, control)
    source = dot_source(m, rows, routers, control)
    for text in (
        "site a",
        "site b",
        "192.0.2.0/24",
        "172.16.100.0/24",
        "router a-router",
        "tailnet 100.64.0.2",
        "broken: forwarding",
        "headscale http://127.0.0.1:8080",
    ):
        assert text in source, text
    assert source.count('"#c62828"') >= 2  # the site a router and its LAN link


def test_site_names_are_quoted_in_dot():
    m, plans, routers, control = healthy()
    rows = judge(m, plans, routers, control)
    source = dot_source(m, rows, routers, control)
    assert '"r:a" -> "r:b"' in source


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed (apt-get install graphviz)")
def test_render_svg(tmp_path):
    m, plans, routers, control = healthy()
    rows = judge(m, plans, routers, control)
    out = tmp_path / "t.svg"
    render_svg(dot_source(m, rows, routers, control), out)
    text = html.unescape(out.read_text())
    assert "<svg" in text and "site a" in text and "site b" in text


def test_render_without_dot(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(GraphError, match="apt-get install graphviz"):
        render_svg("digraph {}", tmp_path / "x.svg")
