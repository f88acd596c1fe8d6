"""The comparison's overlaid histograms share their bins, so the two sides' bars line up."""

from __future__ import annotations

from pages.compare.charts import _ch01_latency, _ch03_track_lifetimes
from tests.fleet.helpers import comparison_fixture


def test_overlaid_histograms_share_one_set_of_bins_covering_both_sides():
    comparison = comparison_fixture()
    for module, values in ((_ch01_latency, "latency_ms"), (_ch03_track_lifetimes, "track_lifetimes_s")):
        a, b = module.build(comparison)["data"]
        assert a["xbins"] == b["xbins"]
        every = getattr(comparison.a, values) + getattr(comparison.b, values)
        assert a["xbins"]["start"] == min(every) and a["xbins"]["end"] > max(every)


def test_a_side_without_values_is_left_out():
    comparison = comparison_fixture()
    comparison.b.latency_ms = []
    (only,) = _ch01_latency.build(comparison)["data"]
    assert only["name"] == comparison.a.label
    comparison.a.latency_ms = []
    assert _ch01_latency.build(comparison) is None
