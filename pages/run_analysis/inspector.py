"""The frame inspector's pieces: the figure (frame image with boxes, a pure function), its facts and the moments.

The image is a layout image whose source is the frame route's URL (same origin, cached by the browser), so the
figure itself stays a few kB. Boxes are one closed-outline trace per track id (a stable colour each) plus one for
the detections; labels (class, score, track id) are a text trace of their own, so each layer can be toggled.
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime
from typing import Any

import dash_bootstrap_components as dbc
from dash import html

from src.components.figures import MUTED, PALETTE, TEMPLATE
from src.models import FrameBox, FrameView, Moment

LAYERS = (("detections", "Detections"), ("tracks", "Tracks"), ("labels", "Labels"))
DETECTION_COLOUR = "#f8fafc"
TRACK_COLOURS = [*PALETTE, "#0891b2", "#c026d3", "#ea580c", "#16a34a"]
FIGURE_HEIGHT = 460
FONT = {"family": "Inter, Segoe UI, system-ui, sans-serif", "color": "#2b2723", "size": 12}


def track_colour(track_id: str) -> str:
    """Return the colour of a track id: the same in every frame, every process and every session."""
    return TRACK_COLOURS[zlib.crc32(track_id.encode()) % len(TRACK_COLOURS)]


def build_inspector_figure(view: FrameView, image_url: str | None, layers: set[str] | list[str]) -> dict[str, Any]:
    """Return the inspector figure: the frame at its pixel size with the chosen layers drawn over it."""
    width, height = max(view.width, 1), max(view.height, 1)
    layers = set(layers)
    traces: list[dict[str, Any]] = []
    if "detections" in layers and view.detections:
        traces.append(_outline(view.detections, height, "Detections", DETECTION_COLOUR, dash="dash"))
    if "tracks" in layers:
        by_track: dict[str, list[FrameBox]] = {}
        for box in view.tracks:
            by_track.setdefault(box.track_id, []).append(box)
        for track_id, boxes in sorted(by_track.items()):
            name = f"track {track_id}" + (f" ({boxes[0].class_id})" if boxes[0].class_id else "")
            traces.append(_outline(tuple(boxes), height, name, track_colour(track_id)))
    if "labels" in layers:
        shown = [*(view.detections if "detections" in layers else ()), *(view.tracks if "tracks" in layers else ())]
        if shown:
            traces.append(_labels(shown, height))
    layout: dict[str, Any] = {
        # No template: the figure is redrawn at every step, and a template is most of its bytes and drawing work.
        "font": FONT,
        "paper_bgcolor": "#ffffff",
        "margin": {"l": 0, "r": 0, "t": 28, "b": 0},
        "height": FIGURE_HEIGHT,
        # Same scale on both axes: the frame keeps its aspect ratio, letterboxed in the plot. y grows upwards:
        # pixel row r sits at height - r, so the image spans [0, height].
        "xaxis": {"range": [0, width], "visible": False},
        "yaxis": {"range": [0, height], "visible": False, "scaleanchor": "x", "scaleratio": 1},
        "showlegend": bool(traces),
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0, "xanchor": "left", "font": {"size": 11}},
        "plot_bgcolor": "#1f2328",
        "dragmode": "pan",
        "uirevision": f"{view.coordinate}:{width}x{height}",  # keep the zoom while stepping through one run
    }
    if image_url:
        layout["images"] = [
            {
                "source": image_url,
                "xref": "x",
                "yref": "y",
                "x": 0,
                "y": height,
                "sizex": width,
                "sizey": height,
                "xanchor": "left",
                "yanchor": "top",
                "sizing": "stretch",
                "layer": "below",
            }
        ]
    return {"data": traces, "layout": layout}


def _outline(boxes: tuple[FrameBox, ...], height: int, name: str, colour: str, dash: str = "solid") -> dict[str, Any]:
    """Return one scatter trace drawing every box as a closed outline (None between boxes)."""
    xs: list[float | None] = []
    ys: list[float | None] = []
    for box in boxes:
        left, right = box.cx - box.w / 2, box.cx + box.w / 2
        top, bottom = height - (box.cy - box.h / 2), height - (box.cy + box.h / 2)
        xs += [left, right, right, left, left, None]
        ys += [top, top, bottom, bottom, top, None]
    return {
        "type": "scatter",
        "mode": "lines",
        "x": xs,
        "y": ys,
        "name": name,
        "line": {"color": colour, "width": 2, "dash": dash},
        "hoverinfo": "skip",
    }


def _labels(boxes: list[FrameBox], height: int) -> dict[str, Any]:
    """Return the text trace naming each box: class, score and track id, at its top-left corner."""
    text = [label(box) for box in boxes]
    return {
        "type": "scatter",
        "mode": "text",
        "x": [box.cx - box.w / 2 for box in boxes],
        "y": [height - (box.cy - box.h / 2) for box in boxes],
        "text": text,
        "hovertext": [
            f"{t} at ({box.cx:.0f}, {box.cy:.0f}) px, {box.w:.0f}×{box.h:.0f}"
            for t, box in zip(text, boxes, strict=True)
        ],
        "hoverinfo": "text",
        "textposition": "top right",
        "textfont": {
            "color": [track_colour(box.track_id) if box.track_id else DETECTION_COLOUR for box in boxes],
            "size": 11,
        },
        "name": "Labels",
        "showlegend": False,
    }


def label(box: FrameBox) -> str:
    """Return a box's label: class, score and, for tracks, #id."""
    parts = [box.class_id or "?"]
    if box.score is not None:
        parts.append(f"{box.score:.2f}")
    if box.track_id:
        parts.append(f"#{box.track_id}")
    return " ".join(parts)


def empty_figure(message: str) -> dict[str, Any]:
    """Return a blank inspector figure with a message in the middle."""
    return {
        "data": [],
        "layout": {
            "template": TEMPLATE,
            "height": FIGURE_HEIGHT,
            "xaxis": {"visible": False},
            "yaxis": {"visible": False},
            "annotations": [
                {
                    "text": message,
                    "x": 0.5,
                    "y": 0.5,
                    "xref": "paper",
                    "yref": "paper",
                    "showarrow": False,
                    "font": {"color": MUTED},
                }
            ],
        },
    }


def facts(view: FrameView) -> html.Div:
    """Return the frame's facts: index, times, latencies, box counts, and why the image is missing if it is."""

    def row(name: str, value: str, element_id: str | None = None) -> html.Tr:
        cell = html.Td(value, id=element_id) if element_id else html.Td(value)
        return html.Tr([html.Th(name, className="fw-normal text-muted pe-3"), cell])

    def ms(value: float | None) -> str:
        return "—" if value is None else f"{value:,.1f} ms"

    rows = [
        row("Frame", f"{view.frame_index:,} ({view.position + 1:,} of {view.count:,})", "ra-fi-index"),
        row("Time", f"{view.t_s:,.3f} s of {view.duration_s:,.1f} s", "ra-fi-time"),
        row("Stamp", iso_ns(view.stamp_ns), "ra-fi-stamp"),
        row("Received", iso_ns(view.receive_ns)),
        row("Image latency", ms(view.image_latency_ms)),
        row("Detection latency", ms(view.detection_latency_ms), "ra-fi-latency"),
        row("Tracking latency", ms(view.tracking_latency_ms)),
        row("Detections", f"{len(view.detections):,}", "ra-fi-detections"),
        row("Tracks", f"{len(view.tracks):,}", "ra-fi-tracks"),
        row("Image", f"{view.width}×{view.height} {view.encoding}".strip() if view.encoding else "—"),
        row("Bag", view.bag or "—"),
    ]
    problem = (
        dbc.Alert(view.problem, color="warning", className="py-1 px-2 small mb-0 mt-2", id="ra-fi-problem")
        if view.problem
        else None
    )
    return html.Div([html.Table(html.Tbody(rows), className="table table-sm small mb-0 bb-fi-facts"), problem])


def iso_ns(ns: int) -> str:
    """Return epoch nanoseconds as an ISO time with all nine digits (UTC)."""
    seconds, rest = divmod(int(ns), 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S") + f".{rest:09d} UTC"


def moments_list(moments: list[Moment] | None, thumbnail_url: Any) -> Any:
    """Return the clickable list of moments, each with its thumbnail (thumbnail_url(frame_index) -> URL)."""
    if moments is None:
        return html.Div("Moments appear once the run is analysed.", className="small text-muted")
    if not moments:
        return html.Div("Nothing stands out in this run: no moment passed its threshold.", className="small text-muted")
    items = []
    for moment in moments:
        thumb = (
            html.Img(src=thumbnail_url(moment.frame_index), className="bb-moment-thumb", alt="")
            if moment.frame_index is not None
            else html.Div(className="bb-moment-thumb")
        )
        items.append(
            html.Button(
                [
                    thumb,
                    html.Div(
                        [
                            html.Div(
                                [
                                    html.Span(moment.label, className="badge text-bg-light border me-1"),
                                    html.Span(f"{moment.t_s:,.2f} s", className="small text-muted"),
                                ]
                            ),
                            html.Div(moment.reason, className="small"),
                        ],
                        className="text-start",
                    ),
                ],
                id={"type": "ra-moment", "t": round(moment.t_s, 6)},
                className="list-group-item list-group-item-action d-flex gap-2 align-items-center bb-moment",
                title="Open this moment in the frame inspector",
            )
        )
    return html.Div(items, className="list-group bb-moments")
