"""The SVG chart helper: marks scale with the data and every text is escaped."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # parses our own output only

from app.console.charts import HEIGHT, Bar, bar_chart, line_chart

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup: object) -> ET.Element:
    return ET.fromstring(str(markup))  # noqa: S314  (our own output)


def test_bars_scale_to_the_largest_value():
    chart = bar_chart([Bar(1, "a"), Bar(4, "b"), Bar(0, "c")], title="t")
    root = parse(chart)
    heights = [float(r.get("height")) for r in root.iter(f"{SVG}rect")]
    assert len(heights) == 3
    assert heights[1] == max(heights) and heights[2] == 0
    assert abs(heights[1] / heights[0] - 4) < 0.05
    bottoms = [float(r.get("y")) + float(r.get("height")) for r in root.iter(f"{SVG}rect")]
    assert all(bottom <= HEIGHT for bottom in bottoms)


def test_text_is_escaped():
    chart = bar_chart([Bar(1, "<script>x</script>")], title='"><b>', x_left="&")
    text = str(chart)
    assert "<script>" not in text and "<b>" not in text
    parse(text)  # still well-formed XML


def test_empty_data_draws_empty_axes():
    root = parse(bar_chart([], title="nothing"))
    assert not list(root.iter(f"{SVG}rect"))
    assert len(list(root.iter(f"{SVG}line"))) == 2


def test_lines_break_at_gaps():
    chart = str(line_chart({"p50": [1.0, 2.0, None, 3.0, 4.0]}, title="latency"))
    assert len(re.findall(r"<polyline", chart)) == 2
    assert len(re.findall(r"<circle", chart)) == 4
    parse(chart)
