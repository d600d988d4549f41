"""Expanders: each strategy alone, and the chain's order and tie-break."""

from __future__ import annotations

import pytest

from deployer.core.elasticity.expanders import Option, choose
from tests.core.builders import make_edge_group, make_group


def option(group, count=1, pods=1, waste=0.0):
    return Option(group, count, tuple(f"p{i}" for i in range(pods)), waste)


CHEAP = make_group("cheap", cost=0.1)
DEAR = make_group("dear", cost=0.4, priority=3)
EDGE = make_edge_group("pi", priority=0)


@pytest.mark.parametrize(
    ("chain", "options", "winner"),
    [
        (("edge-first",), [option(CHEAP), option(EDGE)], "pi"),
        (("priority",), [option(CHEAP), option(DEAR)], "dear"),
        (("least-cost",), [option(CHEAP), option(DEAR)], "cheap"),
        # cost per placed pod: 2 dear nodes for 8 pods beat 1 cheap node for 1 pod? 0.8/8=0.1 > 0.1/1? tie -> waste
        (("least-cost", "least-waste"), [option(CHEAP, 1, 1, 0.9), option(DEAR, 2, 8, 0.1)], "dear"),
        (("least-waste",), [option(CHEAP, waste=0.5), option(DEAR, waste=0.2)], "dear"),
        (("most-pods",), [option(CHEAP, pods=2), option(DEAR, pods=5)], "dear"),
        ((), [option(DEAR), option(CHEAP)], "cheap"),  # no expander: name breaks the tie
        (("edge-first", "priority", "least-cost"), [option(CHEAP), option(DEAR)], "dear"),
        (("edge-first", "least-cost", "priority"), [option(CHEAP), option(DEAR)], "cheap"),
    ],
)
def test_chain_picks(chain, options, winner):
    assert choose(options, chain).group.name == winner


def test_unknown_expander_is_rejected_even_with_one_option():
    with pytest.raises(ValueError, match="unknown expander 'random'"):
        choose([option(CHEAP)], ("random",))
