"""The site file's keys are declared once (sites/schema.py): validation and the README agree with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from sites import load_sites, schema
from sites.load import SiteFileError

REPO = Path(__file__).resolve().parents[2]


def test_every_readme_key_table_is_generated_from_the_schema():
    readme = (REPO / "README.md").read_text()
    assert schema.with_tables(readme) == readme, "README tables differ: python -m sites --schema --readme README.md"
    for section in schema.SECTIONS:
        if section:
            assert f"<!-- schema: {section} " in readme, section


@pytest.mark.parametrize("section,toml", [
    ("sites.NAME", '[sites.a]\nsubnett = "x"\n'),
    ("dhcp", "[dhcp]\nsumaries = []\n"),
    ("tailnet", '[tailnet]\nbackend = "headscale"\nurl = "http://x"\napi_key_envv = "X"\n'),
])
def test_an_undeclared_key_is_refused_naming_the_declared_ones(tmp_path, section, toml):
    two = ('[sites.a]\nsubnet = "192.0.2.0/24"\nrouter = "192.0.2.2"\n'
           '[sites.b]\nsubnet = "172.16.100.0/24"\nrouter = "172.16.100.2"\n')
    path = tmp_path / "sites.toml"
    path.write_text(toml + two if section != "sites.NAME" else two.replace('[sites.a]\n', '[sites.a]\nsubnett = "x"\n'))
    with pytest.raises(SiteFileError) as err:
        load_sites(path)
    assert "unknown key (allowed: " + ", ".join(schema.keys(section)) + ")" in str(err.value)
