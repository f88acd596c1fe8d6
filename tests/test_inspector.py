"""The inspector's pure pieces: its figure, chart click → time, and the callback refusing forged input."""

from __future__ import annotations

import json

import plotly.io as pio

from pages.run_analysis.inspector import build_inspector_figure, label, moments_list, track_colour
from src.analytics.figures import time_of_click
from src.models import FrameBox, FrameView, Moment, RunCoordinate
from tests.conftest import post_callback

COORD = RunCoordinate("a", "b", "c", "d", "e", "f")
CAR = FrameBox(cx=100.0, cy=50.0, w=40.0, h=20.0, class_id="car", score=0.91, track_id="")
TRACKS = (
    FrameBox(cx=100.0, cy=50.0, w=40.0, h=20.0, class_id="car", score=0.8, track_id="314"),
    FrameBox(cx=300.0, cy=200.0, w=10.0, h=30.0, class_id="pedestrian", score=0.7, track_id="12"),
)


def view(**changes: object) -> FrameView:
    base = {
        "coordinate": COORD,
        "version": "v1",
        "position": 3,
        "count": 10,
        "frame_index": 3,
        "t_s": 0.3,
        "duration_s": 0.9,
        "stamp_ns": 1_700_000_000_300_000_000,
        "receive_ns": 1_700_000_000_305_000_000,
        "width": 640,
        "height": 480,
        "detections": (CAR,),
        "tracks": TRACKS,
    }
    return FrameView(**{**base, **changes})


def test_the_figure_puts_the_frame_and_its_boxes_in_pixel_coordinates() -> None:
    figure = build_inspector_figure(view(), "/frames/image?run=a/b/c/d/e/f&frame=3", ["detections", "tracks", "labels"])
    image = figure["layout"]["images"][0]
    assert image["source"].startswith("/frames/image?") and (image["sizex"], image["sizey"]) == (640, 480)
    names = [trace["name"] for trace in figure["data"]]
    assert names == ["Detections", "track 12 (pedestrian)", "track 314 (car)", "Labels"]
    car = figure["data"][0]
    # Pixel rows grow downwards, the plot's y upwards: the box's top edge (row 40) is at y = 480 - 40.
    assert car["x"][:5] == [80.0, 120.0, 120.0, 80.0, 80.0] and car["y"][:5] == [440.0, 440.0, 420.0, 420.0, 440.0]
    assert figure["data"][2]["line"]["color"] == track_colour("314")
    assert figure["data"][3]["text"] == ["car 0.91", "car 0.80 #314", "pedestrian 0.70 #12"]
    pio.from_json(json.dumps(figure))  # a valid Plotly figure


def test_layers_toggle_and_colours_are_stable() -> None:
    only_tracks = build_inspector_figure(view(), None, ["tracks"])
    assert [trace["name"] for trace in only_tracks["data"]] == ["track 12 (pedestrian)", "track 314 (car)"]
    assert "images" not in only_tracks["layout"]
    assert build_inspector_figure(view(), None, [])["data"] == []
    assert track_colour("314") == track_colour("314") and label(CAR) == "car 0.91"


def test_chart_clicks_give_the_run_time_only_on_time_traces() -> None:
    assert time_of_click("fps", {"points": [{"curveNumber": 0, "x": 41.5, "y": 3}]}) == 41.5
    assert time_of_click("latency", {"points": [{"curveNumber": 0, "x": 12, "y": 80.0}]}) is None  # histogram bar
    assert time_of_click("latency", {"points": [{"curveNumber": 1, "x": 41.5, "y": 120.0}]}) == 41.5
    assert time_of_click("lifecycle", {"points": [{"curveNumber": 0, "x": 2.0}]}) is None
    assert time_of_click("drops", {"points": [{"curveNumber": 0, "x": "nan"}]}) is None
    assert time_of_click("fps", "garbage") is None


def test_moments_list_links_each_moment_to_its_time() -> None:
    moments = [Moment("latency", 41.25, "detection latency 300 ms", 3.0, frame_index=7)]
    button = moments_list(moments, lambda index: f"/thumb/{index}").children[0]
    assert button.id == {"type": "ra-moment", "t": 41.25}
    assert button.children[0].src == "/thumb/7"
    assert "analysed" in moments_list(None, str).children


def test_the_inspector_callback_refuses_forged_values_with_a_400(app, client, auth) -> None:
    auth.login("viewer")
    search = "?" + "&".join(f"{k}={v}" for k, v in COORD.to_dict().items())
    values = {
        "ra-fi-run.data": {"run": "../../etc/x/y/z", "frames": 3},
        "{filter-url}.search": search,
    }
    response = post_callback(client, app, "ra-fi-graph.figure", values, triggered="ra-fi-run.data")
    assert response.status_code == 400
    values["ra-fi-run.data"] = {"run": COORD.to_path_str(), "frames": 3}
    values['{"t":ALL,"type":"ra-moment"}.n_clicks'] = [1]
    response = post_callback(
        client, app, "ra-fi-graph.figure", values, triggered='{"t":"nan","type":"ra-moment"}.n_clicks'
    )
    assert response.status_code in (204, 400)  # no run extracted here: nothing to show, never a 500
