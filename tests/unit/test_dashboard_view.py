"""The dashboard's pure view helpers."""
from __future__ import annotations

from ops.dashboard.view import Bar, Rate, bars, number, rungs


def test_bars_keep_the_given_order_with_zeros_then_the_rest_by_count() -> None:
    assert bars({"b": 2, "x": 1, "y": 4}, ("a", "b")) == [
        Bar("a", 0, 0.0), Bar("b", 2, 50.0), Bar("y", 4, 100.0), Bar("x", 1, 25.0)]
    assert bars({}) == []


def test_rungs_run_from_the_top_with_shares_of_the_largest_count() -> None:
    top, *_, inactive, withheld = rungs({"level": {"advocate": 2, "inactive": 8}, "observed": {"advocate": 4},
                                         "stated": {"inactive": 1}})
    assert (top.level, top.now, top.observed, top.share_now, top.share_observed) == ("advocate", 2, 4, 25.0, 50.0)
    assert (inactive.level, inactive.now, inactive.stated, inactive.share_now) == ("inactive", 8, 1, 100.0)
    assert (withheld.level, withheld.now) == ("withheld", 0)


def test_rate_is_events_per_second_over_its_window() -> None:
    rate = Rate(window=10)
    assert rate.observe(100, now=0.0) is None
    assert rate.observe(150, now=5.0) == 10.0
    assert rate.observe(300, now=10.0) == 20.0
    assert rate.observe(300, now=25.0) == 0.0  # older sightings left the window
    assert rate.observe(330, now=27.0) == 30 / 17  # from the newest sighting at least a window old


def test_numbers_are_grouped_and_missing_ones_are_a_dash() -> None:
    assert number(1234567) == "1,234,567" and number(2.345, 1) == "2.3" and number(None) == "–"
