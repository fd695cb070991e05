"""Two builders of one cache entry take turns (lab/cachelock.py): the second waits for the
first's lock, then sees the entry built and builds nothing."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from lab.cachelock import held

REPO = Path(__file__).resolve().parents[2]

SECOND_BUILDER = """
import sys
from pathlib import Path
from lab.cachelock import held
entry = Path(sys.argv[1])
with held(entry):
    print("built already" if entry.exists() else "building", flush=True)
"""


def test_second_builder_waits_then_finds_the_entry_built(tmp_path: Path) -> None:
    entry = tmp_path / "cache" / "image-x"
    with held(entry):
        second = subprocess.Popen([sys.executable, "-c", SECOND_BUILDER, str(entry)], cwd=REPO,
                                  stdout=subprocess.PIPE, text=True)
        time.sleep(0.5)
        assert second.poll() is None, "the second builder did not wait for the first's lock"
        entry.mkdir()
    out, _ = second.communicate(timeout=10)
    assert out.strip() == "built already"
    assert (tmp_path / "cache" / "image-x.lock").exists()
