"""Plotly figures of one analysed run, shared by build_figures (the service) and the run analysis view's charts.

Responsiveness with 100k+ point series: every line is decimated before it reaches a figure and long lines are
drawn with WebGL.

- ``decimate`` keeps the minimum and the maximum of each bucket of consecutive points (at most MAX_POINTS per
  trace, ~4,000), in time order. Unlike taking every n-th point it keeps spikes and dips, so a frame drop or a
  latency spike still shows at full height when zoomed out. The browser then receives ~60 kB per trace instead
  of megabytes, and Python builds each figure in milliseconds.
- Traces that still hold more than GL_THRESHOLD points use ``go.Scattergl`` (WebGL pans and zooms a few
  thousand points smoothly where SVG stutters); short ones stay SVG, which renders crisper and costs no
  WebGL context (browsers allow ~16 per page).
- Distributions are binned here with numpy and drawn as bars, so a 100k-message latency histogram ships 60
  bars, not 100k values for plotly.js to bin.

Decimated data is for drawing only: the metrics are computed on the full series.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from src.analytics.metrics import RunAnalysisData
from src.components.figures import BAD, MUTED, PALETTE, base_figure
from src.models import AnalysisPlots

MAX_POINTS = 4000
GL_THRESHOLD = 1000
HISTOGRAM_BINS = 60
MAX_DROP_SHAPES = 2000  # the longest drops are shaded; more would only be slivers at full zoom-out
TIME_AXIS = "seconds since first frame"
_LABEL = {"showarrow": False, "bgcolor": "rgba(255, 255, 255, 0.8)"}
TITLES: dict[str, str] = {
    "fps": "Frame and detection rate",
    "activity": "Detections and active tracks",
    "latency": "Detection latency",
    "lifecycle": "Track lifetimes",
    "drops": "Frame drops",
}


def decimate(x: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Return at most max_points of (x, y): each bucket's min and max, in order; short series pass through."""
    n = y.size
    if n <= max_points:
        return x, y
    size = math.ceil(n / max(1, max_points // 2))  # points per bucket; each bucket gives at most two
    buckets = math.ceil(n / size)
    values = y.astype(np.float64, copy=False)
    # NaN never wins: a bucket of only NaN picks its first point, which keeps the gap in the line.
    pad = buckets * size - n  # < size: only the last bucket is padded
    low = np.concatenate((np.where(np.isnan(values), np.inf, values), np.full(pad, np.inf)))
    high = np.concatenate((np.where(np.isnan(values), -np.inf, values), np.full(pad, -np.inf)))
    offsets = np.arange(buckets) * size
    lo = low.reshape(buckets, size).argmin(axis=1) + offsets
    hi = high.reshape(buckets, size).argmax(axis=1) + offsets
    index = np.sort(np.stack((lo, hi), axis=1), axis=1).ravel()
    index = index[np.concatenate(([True], index[1:] != index[:-1]))]
    return x[index], y[index]


def line(
    x: np.ndarray, y: np.ndarray, *, name: str, color: str, width: float = 1.5, opacity: float = 1.0, **extra: object
) -> go.Scatter | go.Scattergl:
    """Return a decimated line trace, WebGL when it is long."""
    x, y = decimate(np.asarray(x), np.asarray(y))
    kind = go.Scattergl if y.size > GL_THRESHOLD else go.Scatter
    return kind(x=x, y=y, name=name, mode="lines", line={"color": color, "width": width}, opacity=opacity, **extra)


def instant_line(
    t: np.ndarray, fps: np.ndarray, *, name: str, color: str, opacity: float = 1.0
) -> go.Scatter | go.Scattergl:
    """Return instant rates as steps: each value holds over its interval (t_prev, t], so a gap reads as a gap."""
    trace = line(t, fps, name=name, color=color, width=1, opacity=opacity)
    return trace.update(line={"shape": "vh"})


def histogram(values: np.ndarray, bins: int = HISTOGRAM_BINS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return bin centres, counts and widths of the finite values."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.empty(0), np.empty(0, dtype=np.int64), np.empty(0)
    low, high = float(finite.min()), float(finite.max())
    if high - low <= 1e-9 * max(1.0, abs(low), abs(high)):  # one value (up to float noise): one visible bar
        high = low + max(abs(low) * 0.01, 1e-3)
    counts, edges = np.histogram(finite, bins=bins, range=(low, high))
    return (edges[:-1] + edges[1:]) / 2, counts, np.diff(edges)


def note(figure: go.Figure, text: str) -> go.Figure:
    """Write text in the middle of figure (for runs with nothing to draw) and hide its empty axes."""
    figure.add_annotation(text=text, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font={"color": MUTED})
    return figure.update_layout(xaxis={"visible": False}, yaxis={"visible": False})


def _rule(axis: str, value: float) -> dict[str, object]:
    """Return a dotted line across the plot at value on axis 'x' or 'y'.

    Plain shape dicts set in one update_layout: add_hline/add_vline cost ~20 ms each in plotly's validation.
    """
    across = {"xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": value, "y1": value}
    if axis == "x":
        across = {"yref": "paper", "y0": 0, "y1": 1, "xref": "x", "x0": value, "x1": value}
    return {"type": "line", "line": {"dash": "dot", "width": 1, "color": BAD}, **across}


def _rule_label(axis: str, value: float, text: str) -> dict[str, object]:
    """Return the label of a _rule, at its far end."""
    if axis == "x":
        return {**_LABEL, "text": text, "x": value, "xref": "x", "y": 1, "yref": "paper", "xanchor": "left"}
    return {**_LABEL, "text": text, "x": 1, "xref": "paper", "y": value, "yref": "y", "yanchor": "bottom"}


# -- the charts ---------------------------------------------------------------------------------------


def draw_fps(figure: go.Figure, data: RunAnalysisData) -> go.Figure:
    """Draw frame and detection FPS: instant (thin, faint) and rolling (bold)."""
    s, window = data.series, data.rolling_window_s
    for stream, label, color in ((s.frames, "Frames", PALETTE[0]), (s.detections, "Detections", PALETTE[1])):
        if stream.t.size:
            figure.add_trace(
                instant_line(stream.instant_t, stream.instant, name=f"{label}, instant", color=color, opacity=0.35)
            )
            figure.add_trace(
                line(stream.t, stream.rolling, name=f"{label}, rolling {window:g} s", color=color, width=2)
            )
    if not figure.data:
        return note(figure, "No frames or detections in this run.")
    return figure.update_layout(xaxis={"title": {"text": TIME_AXIS}}, yaxis={"title": {"text": "FPS"}}, hovermode="x")


def draw_activity(figure: go.Figure, data: RunAnalysisData) -> go.Figure:
    """Draw detections per detection message and active tracks per tracking message over time."""
    s = data.series
    if s.detections.t.size:
        figure.add_trace(
            line(s.detections.t, s.detections_per_message, name="Detections per message", color=PALETTE[2])
        )
    if s.tracking_t.size:
        figure.add_trace(line(s.tracking_t, s.tracks_per_message, name="Active tracks", color=PALETTE[4]))
    if not figure.data:
        return note(figure, "No detections or tracks in this run.")
    return figure.update_layout(xaxis={"title": {"text": TIME_AXIS}}, yaxis={"title": {"text": "count"}}, hovermode="x")


def draw_latency(figure: go.Figure, data: RunAnalysisData) -> go.Figure:
    """Draw the latency distribution (left, sideways) next to latency over time (right), sharing the ms axis."""
    s, m = data.series, data.metrics
    centres, counts, widths = histogram(s.latency_ms)
    if not counts.size:
        return note(figure, "No detection latencies in this run.")
    figure.add_bar(x=counts, y=centres, width=widths, orientation="h", name="Messages", marker_color=MUTED)
    figure.add_trace(line(s.detections.t, s.latency_ms, name="Latency", color=PALETTE[3], width=1, xaxis="x2"))
    percentiles = (("p50", m.latency_p50_ms), ("p95", m.latency_p95_ms), ("p99", m.latency_p99_ms))
    marks = [(f"{label} {value:.1f} ms", value) for label, value in percentiles if value is not None]
    return figure.update_layout(
        xaxis={"domain": [0, 0.22], "title": {"text": "messages"}, "autorange": "reversed"},
        xaxis2={"domain": [0.28, 1], "anchor": "y", "title": {"text": TIME_AXIS}},
        yaxis={"title": {"text": "latency (ms)"}},
        showlegend=False,
        bargap=0,
        shapes=[_rule("y", value) for _, value in marks],
        annotations=[_rule_label("y", value, text) for text, value in marks],
    )


def draw_lifecycle(figure: go.Figure, data: RunAnalysisData) -> go.Figure:
    """Draw how long tracks lived, with their mean marked."""
    centres, counts, widths = histogram(data.series.track_lifetime_s)
    if not counts.size:
        return note(figure, "No tracks in this run.")
    figure.add_bar(x=centres, y=counts, width=widths, name="Tracks", marker_color=PALETTE[4])
    mean = data.metrics.avg_track_lifetime
    marks = [] if mean is None else [(f"mean {mean:.2f} s", mean)]
    return figure.update_layout(
        xaxis={"title": {"text": "lifetime (s)"}},
        yaxis={"title": {"text": "tracks"}},
        bargap=0.05,
        showlegend=False,
        shapes=[_rule("x", value) for _, value in marks],
        annotations=[_rule_label("x", value, text) for text, value in marks],
    )


def draw_drops(figure: go.Figure, data: RunAnalysisData) -> go.Figure:
    """Draw instant frame FPS with every frame drop shaded (the longest MAX_DROP_SHAPES when there are more)."""
    s = data.series
    if s.frames.t.size < 2:
        return note(figure, "Not enough frames to find drops.")
    figure.add_trace(instant_line(s.frames.instant_t, s.frames.instant, name="Frame FPS", color=PALETTE[0]))
    start, duration = s.drop_start_s, s.drop_duration_s
    if start.size > MAX_DROP_SHAPES:
        keep = np.sort(np.argsort(duration)[-MAX_DROP_SHAPES:])
        start, duration = start[keep], duration[keep]
    if start.size:
        # One filled trace of NaN-separated rectangles instead of a shape per drop: one SVG path, any count.
        end = start + duration
        xs = np.column_stack((start, start, end, end, np.full(start.size, np.nan))).ravel()
        ys = np.tile([0.0, 1.0, 1.0, 0.0, np.nan], start.size)
        figure.add_scatter(
            x=xs,
            y=ys,
            yaxis="y2",
            fill="toself",
            mode="lines",
            line={"width": 0},
            fillcolor="rgba(185, 28, 28, 0.22)",
            hoverinfo="skip",
            name="Drops",
        )
        figure.add_scatter(
            x=start + duration / 2,
            y=np.full(start.size, 0.97),
            yaxis="y2",
            mode="markers",
            marker={"color": BAD, "size": 6, "symbol": "triangle-down"},
            name="Drop",
            hovertext=[f"drop at {a:.2f} s, {d:.3f} s long" for a, d in zip(start, duration, strict=True)],
            hoverinfo="text",
            showlegend=False,
        )
    total = data.counts.get("frame_drops", s.drop_start_s.size)
    shown = f" (longest {start.size} shaded)" if start.size < total else ""
    plural = "s" if total != 1 else ""
    subtitle = f"{total} gap{plural} longer than {data.drop_factor:g}× the median frame interval{shown}"
    return figure.update_layout(
        xaxis={"title": {"text": TIME_AXIS}},
        yaxis={"title": {"text": "FPS"}},
        yaxis2={"overlaying": "y", "range": [0, 1], "visible": False, "fixedrange": True},
        title={"subtitle": {"text": subtitle}},
        hovermode="closest",
    )


# Charts whose x axis is the run's time, and the first trace drawn against it (the latency histogram's bars,
# trace 0, count messages on their x axis): a click on any later trace is a moment of the run.
TIME_CHARTS: dict[str, int] = {"fps": 0, "activity": 0, "latency": 1, "drops": 0}


def time_of_click(chart: str, click: object) -> float | None:
    """Return the run time (s since the first frame) of a click on a TIME_CHARTS chart, or None."""
    first_trace = TIME_CHARTS.get(chart)
    points = click.get("points") if isinstance(click, dict) else None
    if first_trace is None or not isinstance(points, list):
        return None
    for point in points:
        if not isinstance(point, dict) or not isinstance(point.get("curveNumber"), int):
            continue
        x = point.get("x")
        if point["curveNumber"] >= first_trace and isinstance(x, int | float) and math.isfinite(x):
            return float(x)
    return None


DRAWERS = {
    "fps": draw_fps,
    "activity": draw_activity,
    "latency": draw_latency,
    "lifecycle": draw_lifecycle,
    "drops": draw_drops,
}


def build_figures(data: RunAnalysisData) -> AnalysisPlots:
    """Build the four figures of the AnalysisPlots model (the drops chart has no slot there: see build_all)."""
    return AnalysisPlots(
        fps_figure=draw_fps(base_figure(TITLES["fps"]), data),
        stats_figure=draw_activity(base_figure(TITLES["activity"]), data),
        latency_figure=draw_latency(base_figure(TITLES["latency"]), data),
        lifecycle_figure=draw_lifecycle(base_figure(TITLES["lifecycle"]), data),
    )


def build_all_figures(data: RunAnalysisData) -> dict[str, go.Figure]:
    """Build every chart of the run, keyed like TITLES."""
    return {key: draw(base_figure(TITLES[key]), data) for key, draw in DRAWERS.items()}
