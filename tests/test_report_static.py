"""Static figures: no two pieces of text overlap or leave the figure, even where models crowd together, and a
single panel is one paper column wide at a readable size."""

from __future__ import annotations

from itertools import combinations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text
from PIL import Image

from dass_edge.report import static, style
from dass_edge.report.points import Details, Point


def crowded() -> dict[str, list[Point]]:
    """Three panels; in each, models a few microseconds and tenths of a percent apart (the demo's worst case:
    labels printed beside the points landed on top of each other)."""
    labels = ["dass-tiny", "dass-small", "sparse-darts-tiny", "sparse-mobilenet-v2", "sparse-resnet-18"]
    panels = {}
    for d, panel in enumerate(["intel-cpu/onnxruntime", "intel-cpu/openvino", "adreno640/litert"]):
        source = "predicted" if panel.startswith("adreno") else "measured"
        panels[panel] = [Point(label, panel.split("/")[0], 0.70 + 0.002 * i + d, 0.81 + 0.001 * i, source,
                               panel.split("/")[1], Details(spread_low_ms=0.6 + d, p90_ms=0.9 + d,
                                                            dead=label == "sparse-mobilenet-v2"))
                         for i, label in enumerate(labels)]
    panels["intel-cpu/onnxruntime"].append(Point("sparse-resnet-18", "intel-cpu", 40.0, 0.5, "measured", "onnxruntime"))
    return panels


def drawn_ticks(ax) -> list[Text]:
    """Tick labels matplotlib actually draws: those of ticks inside the view (others keep stale positions)."""
    labels = []
    for axis in (ax.xaxis, ax.yaxis):
        low, high = sorted(axis.get_view_interval())
        slack = 1e-9 * (high - low)
        labels += [t.label1 for t in axis.get_major_ticks() + axis.get_minor_ticks()
                   if low - slack <= t.get_loc() <= high + slack]
    return labels


def texts(fig) -> list[tuple[str, object]]:
    """Every drawn, non-empty text of the figure (titles, axis labels, point labels, tick labels, legend)
    with its box in display pixels."""
    renderer = fig.canvas.get_renderer()
    found = [t for legend in fig.legends for t in legend.get_texts()]
    for ax in fig.axes:
        if ax.get_visible():
            found += [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts, *drawn_ticks(ax)]
    return [(t.get_text(), t.get_window_extent(renderer)) for t in found if t.get_visible() and t.get_text().strip()]


def assert_no_overlap(fig, panels: dict[str, list[Point]]) -> None:
    FigureCanvasAgg(fig).draw()  # the renderer savefig uses for PNG
    boxes = texts(fig)
    shown = {name.removesuffix(" (dead)") for name, _ in boxes}
    assert set(panels) | {p.label for pts in panels.values() for p in pts} <= shown  # every title and model
    width, height = fig.canvas.get_width_height()
    for name, box in boxes:
        assert box.x0 >= -0.5 and box.y0 >= -0.5 and box.x1 <= width + 0.5 and box.y1 <= height + 0.5, name
    clashes = [(a, b) for (a, box_a), (b, box_b) in combinations(boxes, 2) if box_a.overlaps(box_b)]
    assert not clashes, clashes


def test_no_text_overlaps_in_one_panel_or_the_grid():
    panels = crowded()
    colors = style.colors([p for pts in panels.values() for p in pts])
    for panel, pts in panels.items():
        assert_no_overlap(static.figure({panel: pts}, colors), {panel: pts})
    assert_no_overlap(static.figure(panels, colors, cols=2), panels)


def test_a_panel_is_one_column_wide_and_readable(tmp_path):
    panels = crowded()
    colors = style.colors([p for pts in panels.values() for p in pts])
    fig = static.figure({"intel-cpu/onnxruntime": panels["intel-cpu/onnxruntime"]}, colors)
    assert tuple(fig.get_size_inches())[0] == static.COLUMN_IN
    FigureCanvasAgg(fig).draw()
    assert min(t.get_fontsize() for t in fig.findobj(lambda a: hasattr(a, "get_fontsize"))) >= 7  # points
    # a 40 ms outlier next to 0.7 ms models: the latency axis switches to log scale so both stay readable
    assert fig.axes[0].get_xscale() == "log"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "sparse-mobilenet-v2 (dead)" in legend and "measured, front" in legend
    png, svg = static.save(fig, tmp_path / "panel")
    with Image.open(png) as image:
        assert image.size[0] == static.COLUMN_IN * 300
    assert "<svg" in svg.read_text()[:1000] and "dass-tiny" in svg.read_text()  # SVG text stays text
