"""lab.drive.why_failed: a failed deploy's assertion message carries the failing command's output,
not only the run's summary (which is all a plain tail of the output holds)."""

from __future__ import annotations

import subprocess

from lab.drive import why_failed


def test_the_error_and_the_lines_before_it_are_kept_even_far_from_the_end() -> None:
    out = "\n".join(["--> Starting operation: Join the tailnet",
                     "[a-router3] backend error: 502 Bad Gateway",
                     "[a-router3] Error: executed 0/1 commands"]
                    + [f"summary line {i}" for i in range(500)])
    text = why_failed(subprocess.CompletedProcess(["pyinfra"], 1, "", out), tail=200)
    assert "[a-router3] backend error: 502 Bad Gateway" in text
    assert "summary line 499" in text and "summary line 10\n" not in text
    assert text.count("backend error: 502") == 1  # two error lines close together: their context once


def test_the_results_table_header_is_not_taken_for_an_error() -> None:
    out = "    Operation   Hosts   Success   Error   No Change\n" + "x\n" * 10
    assert why_failed(subprocess.CompletedProcess(["pyinfra"], 1, out, ""), tail=5).startswith("\n...")
