"""The end-of-run summary: what a failed host was left in."""

from __future__ import annotations

from operations.summary import StepOutcome, left_in


def step(name, ran=True, changed=False, failed=False, ignored=False):
    return StepOutcome(name, ran=ran, changed=changed, failed=failed, ignored=ignored)


def test_failure_before_any_change_leaves_the_host_as_it_was():
    steps = [step("Check"), step("Install"), step("Enable forwarding", failed=True), step("Join", ran=False)]
    assert left_in(steps) == "as it was (failed at 'Enable forwarding')"


def test_failure_after_changes_names_every_step_that_changed_it():
    steps = [step("Check"), step("Install", changed=True), step("Enable forwarding", changed=True, failed=True),
             step("Join", ran=False)]
    assert left_in(steps) == ("partially changed (failed at 'Enable forwarding'); steps that changed it: "
                              "Install; Enable forwarding (in part)")


def test_an_ignored_optional_step_is_not_the_failure():
    steps = [step("Install", changed=True), step("UDP GRO", changed=True, failed=True, ignored=True)]
    assert left_in(steps) == "fully changed"
    assert left_in([step("Install"), step("UDP GRO", failed=True, ignored=True)]) == "as it was"
