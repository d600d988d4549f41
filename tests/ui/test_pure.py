"""The dashboard's pure helpers: the step chart and the simulator results reader."""

from __future__ import annotations

from deployer.ui.charts import line_chart
from deployer.ui.simresults import parse_results


def test_chart_steps_and_scales_to_a_shared_axis():
    assert line_chart([("pending", [])]) is None
    chart = line_chart([("pending", [(10.0, 4.0), (0.0, 0.0), (20.0, 4.0)]), ("nodes", [(0.0, 1.0)])])
    assert chart is not None
    pending, nodes = chart.lines
    # Sorted by time, a vertical step at t=10, and no corner where the value stays.
    assert pending.points == "40.0,210.0 364.0,210.0 364.0,10.0 688.0,10.0"
    assert pending.last == 4.0 and nodes.last == 1.0
    assert [tick.label for tick in chart.y_ticks] == ["0", "1", "2", "3", "4"]


def test_results_sections_keep_their_blocks_in_order():
    results = parse_results(
        "# Title\n\nIntro with **bold**.\n\n## trace-a\n\n![trace-a](plots/trace-a.png)\n\n"
        "| policy | cost |\n|---|---|\n| deployer | 1.0 |\n| clues | 2.0 |\n\n- met: `zero` evictions\n\n"
        "## Calibration\n\n| variant | x |\n|---|---|\n| a | 1 |\nBetween.\n| variant | y |\n|---|---|\n| b | 2 |\n"
    )
    assert results.intro == ["Intro with bold."]
    trace, calibration = results.sections
    assert [b.kind for b in trace.blocks] == ["plot", "table", "text"]
    assert trace.blocks[0].plot == "trace-a.png"
    assert trace.blocks[1].table.header == ["policy", "cost"]
    assert trace.blocks[1].table.rows == [["deployer", "1.0"], ["clues", "2.0"]]
    assert trace.blocks[2].text == "met: zero evictions"
    assert [b.kind for b in calibration.blocks] == ["table", "text", "table"]
    assert calibration.blocks[2].table.rows == [["b", "2"]]
