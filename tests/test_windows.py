"""Window reconstruction from host anchors (pure logic)."""

from model.windows import Segment, layer_windows


def test_cumulative_windows_follow_the_anchor_back_to_back():
    windows = layer_windows([Segment(1_000, [("a", 0.5, None), ("b", 0.25, None)])])
    assert windows == [("a", 0.5, 1_000, 501_000), ("b", 0.25, 501_000, 751_000)]


def test_measured_offsets_win_over_the_cumulative_sum():
    windows = layer_windows([Segment(0, [("a", 0.001, 10_000), ("b", 0.002, 50_000)])])
    assert [(w[2], w[3]) for w in windows] == [(10_000, 11_000), (50_000, 52_000)]


def test_each_partition_starts_at_its_own_anchor():
    windows = layer_windows(
        [Segment(0, [("a", 1.0, None)]), Segment(5_000_000, [("b", 1.0, None)])]
    )
    assert windows[1][2] == 5_000_000 and windows[1][3] == 6_000_000
