"""Every operation's IM-changing call under every fault kind, against the real IM: after the user's
re-run, the IM holds exactly what was asked, by id and by tag, and nothing leaks when it is destroyed."""

from __future__ import annotations

import pytest

from tests.faults.proxy import KINDS
from tests.faults.scenarios import MUTATING_CALL, Scenario, run

pytestmark = [pytest.mark.im, pytest.mark.slow]

CASES = [Scenario(op, kind) for op in MUTATING_CALL for kind in KINDS] + [
    # A create held past the landing window lands after the resubmission: the tag finds the duplicate.
    # (A scale-up held that long is indistinguishable from a deliberate one: docs/reliability.md.)
    Scenario("create", "hold", late=True),
    Scenario("overlap", "hold"),
    Scenario("overlap", "reset_after"),
    Scenario("overlap", "stall"),
]


@pytest.mark.parametrize("scenario", CASES, ids=lambda s: s.key)
def test_no_leak_duplicate_undone_or_lost(lab, scenario):
    violations = run(lab, scenario)
    assert not +violations, f"{scenario.key}: {dict(violations)}"
