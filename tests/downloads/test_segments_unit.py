"""The segment plan on its own: tiling, sizes, rounding, stealing and checkpoints.

Pure and synchronous, so these are plain parametrized cases over sizes that sit on and
around the alignment, the segment cap and the one- and zero-byte edges.
"""

from __future__ import annotations

import json

import pytest

from modeldepot.downloads.segments import ALIGN, MAX_SEGMENT, Segment, SegmentPlan

MIB = 1024 * 1024

# (size, connections, min_segment): edges of every rounding step in ``create``.
SHAPES = [
    (1, 1, 1),
    (1, 8, 4 * MIB),
    (2, 8, 1),
    (ALIGN - 1, 4, 1),
    (ALIGN, 4, 1),
    (ALIGN + 1, 1, 1),
    (ALIGN + 1, 16, 1),
    (3 * MIB + 4321, 4, MIB // 4),
    (3 * MIB + 4321, 16, MIB // 4),
    (10 * MIB, 1, 1),
    (10 * MIB, 3, 100_000),  # min_segment not a multiple of ALIGN
    (100 * MIB + 1, 8, 8 * MIB),
    (MAX_SEGMENT * 4 + 1, 1, 1),
    (MAX_SEGMENT * 40, 2, 64 * MIB),  # min_segment above the cap: the cap wins
    (7 * MAX_SEGMENT - 1, 0, 1),  # zero connections count as one
]


def assert_tiles(plan: SegmentPlan) -> None:
    """Segments cover [0, size) exactly: sorted, contiguous, non-empty, no overlap."""
    ordered = sorted(plan.segments, key=lambda s: s.start)
    assert ordered == plan.segments, "segments are kept in start order"
    position = 0
    for segment in ordered:
        assert segment.start == position, f"gap or overlap at {position}: {segment}"
        assert segment.end > segment.start, f"empty segment {segment}"
        position = segment.end
    assert position == plan.size


def step_of(plan: SegmentPlan) -> int:
    return plan.segments[0].end - plan.segments[0].start


@pytest.mark.parametrize(("size", "connections", "min_segment"), SHAPES)
def test_create_tiles_the_file_exactly(size: int, connections: int, min_segment: int) -> None:
    plan = SegmentPlan.create(size, connections=connections, min_segment=min_segment)

    assert_tiles(plan)
    assert plan.done_bytes == 0
    assert not plan.complete
    assert plan.open_segments == len(plan.segments)
    assert plan.contiguous_prefix() == 0


@pytest.mark.parametrize(("size", "connections", "min_segment"), SHAPES)
def test_create_segment_sizes_are_aligned_and_bounded(
    size: int, connections: int, min_segment: int
) -> None:
    plan = SegmentPlan.create(size, connections=connections, min_segment=min_segment)
    step = step_of(plan)
    *body, last = plan.segments

    # Every segment but the last has the same aligned length; the last is the remainder.
    for segment in body:
        assert segment.end - segment.start == step
    assert 0 < last.end - last.start <= step
    if body:
        assert step % ALIGN == 0
        assert ALIGN <= step <= MAX_SEGMENT
        # At least min_segment (rounded up to the alignment), unless the cap says less.
        assert step >= min(min_segment, MAX_SEGMENT)
    for segment in plan.segments:
        assert segment.start % ALIGN == 0, "every cut sits on the alignment"


@pytest.mark.parametrize("connections", [1, 2, 4, 8, 16])
def test_create_cuts_about_four_segments_per_connection(connections: int) -> None:
    size = 4 * connections * 3 * ALIGN  # divides exactly: no remainder segment
    plan = SegmentPlan.create(size, connections=connections, min_segment=1)

    assert len(plan.segments) == 4 * connections
    assert step_of(plan) == 3 * ALIGN


def test_create_rounds_a_step_up_to_the_alignment() -> None:
    # ceil(size / 4) is one byte past a multiple of ALIGN: the step rounds up, not down.
    size = 4 * (2 * ALIGN + 1)
    plan = SegmentPlan.create(size, connections=1, min_segment=1)

    assert step_of(plan) == 3 * ALIGN
    assert [(s.start, s.end) for s in plan.segments] == [
        (0, 3 * ALIGN),
        (3 * ALIGN, 6 * ALIGN),
        (6 * ALIGN, size),
    ]


def test_create_caps_segments_for_a_huge_file() -> None:
    size = 50 * 1024 * MIB
    plan = SegmentPlan.create(size, connections=1, min_segment=1)

    assert step_of(plan) == MAX_SEGMENT
    assert len(plan.segments) == -(-size // MAX_SEGMENT)
    assert_tiles(plan)


def test_min_segment_wins_over_four_per_connection() -> None:
    plan = SegmentPlan.create(10 * MIB, connections=16, min_segment=4 * MIB)

    assert [s.end - s.start for s in plan.segments] == [4 * MIB, 4 * MIB, 2 * MIB]


def test_one_byte_file_is_one_segment() -> None:
    plan = SegmentPlan.create(1, connections=8, min_segment=1)

    assert [(s.start, s.end) for s in plan.segments] == [(0, 1)]
    segment = plan.take(min_split=1)
    assert segment is plan.segments[0]
    assert plan.take(min_split=1) is None, "one byte cannot be split"
    segment.done = 1
    assert plan.complete
    assert plan.done_bytes == 1
    assert plan.contiguous_prefix() == 1
    assert plan.open_segments == 0


@pytest.mark.parametrize("size", [0, -1])
def test_empty_file_has_no_segments_and_is_complete(size: int) -> None:
    plan = SegmentPlan.create(size, connections=4, min_segment=1)

    assert plan.size == 0
    assert plan.segments == []
    assert plan.complete
    assert plan.done_bytes == 0
    assert plan.contiguous_prefix() == 0
    assert plan.take(min_split=1) is None
    plan.reset()
    assert plan.segments == []


def test_segment_progress_properties() -> None:
    segment = Segment(start=100, end=200, done=30)

    assert segment.offset == 130
    assert segment.remaining == 70
    assert not segment.complete
    segment.done = 100
    assert segment.remaining == 0
    assert segment.complete
    segment.done = 150  # a segment whose tail was stolen after it was written
    assert segment.remaining == 0
    assert segment.complete


def test_done_bytes_counts_each_segment_at_most_its_length() -> None:
    plan = SegmentPlan(size=300, segments=[Segment(0, 100, 100), Segment(100, 300, 50)])
    plan.segments[0].done = 150  # overshoot after a steal shortened it

    assert plan.done_bytes == 150


def test_contiguous_prefix_stops_at_the_first_unwritten_byte() -> None:
    plan = SegmentPlan(
        size=300,
        segments=[Segment(0, 100, 100), Segment(100, 200, 40), Segment(200, 300, 100)],
    )

    assert plan.contiguous_prefix() == 140
    plan.segments[1].done = 100
    assert plan.contiguous_prefix() == 300


def test_take_hands_out_the_lowest_unassigned_segment_first() -> None:
    plan = SegmentPlan.create(8 * ALIGN, connections=1, min_segment=1)
    starts = [s.start for s in plan.segments]

    taken = [plan.take(min_split=ALIGN) for _ in starts]

    assert [s.start for s in taken if s is not None] == starts
    assert all(s.assigned for s in plan.segments)


def test_take_steals_half_of_the_largest_unread_segment() -> None:
    plan = SegmentPlan(
        size=16 * ALIGN, segments=[Segment(0, 4 * ALIGN), Segment(4 * ALIGN, 16 * ALIGN)]
    )
    first = plan.take(min_split=ALIGN)
    second = plan.take(min_split=ALIGN)
    assert first is not None
    assert second is not None

    stolen = plan.take(min_split=ALIGN)

    assert stolen is not None
    assert stolen.assigned
    assert (stolen.start, stolen.end) == (10 * ALIGN, 16 * ALIGN)
    assert second.end == 10 * ALIGN
    assert_tiles(plan)


def test_steal_leaves_bytes_already_received_to_their_reader() -> None:
    plan = SegmentPlan(size=16 * ALIGN, segments=[Segment(0, 16 * ALIGN)])
    victim = plan.take(min_split=ALIGN)
    assert victim is not None
    victim.done = 2 * ALIGN
    victim.received = 4 * ALIGN  # read but not yet written: still the victim's

    stolen = plan.take(min_split=ALIGN)

    assert stolen is not None
    # Unread runs from 6 to 16 ALIGN; the cut is in its middle, aligned.
    assert (stolen.start, stolen.end) == (11 * ALIGN, 16 * ALIGN)
    assert victim.end == 11 * ALIGN
    assert_tiles(plan)


def test_no_steal_when_pieces_would_be_smaller_than_min_split() -> None:
    plan = SegmentPlan(size=4 * ALIGN, segments=[Segment(0, 4 * ALIGN)])
    assert plan.take(min_split=ALIGN) is not None

    assert plan.take(min_split=2 * ALIGN + 1) is None
    assert len(plan.segments) == 1


def test_stealing_until_nothing_is_left_keeps_the_tiling() -> None:
    plan = SegmentPlan.create(64 * ALIGN + 7, connections=1, min_segment=16 * ALIGN)
    while plan.take(min_split=ALIGN) is not None:
        assert_tiles(plan)

    assert all(s.assigned for s in plan.segments)
    assert all(s.end - s.start >= ALIGN or s.end == plan.size for s in plan.segments)


def test_release_makes_a_segment_available_again() -> None:
    plan = SegmentPlan.create(2 * ALIGN, connections=1, min_segment=ALIGN)
    segment = plan.take(min_split=ALIGN)
    assert segment is not None

    plan.release(segment)

    assert plan.take(min_split=ALIGN) is segment


def test_reset_forgets_all_progress() -> None:
    plan = SegmentPlan.create(8 * ALIGN, connections=2, min_segment=1)
    for segment in plan.segments:
        segment.done = ALIGN

    plan.reset()

    assert [(s.start, s.end, s.done) for s in plan.segments] == [(0, 8 * ALIGN, 0)]


def half_done_plan() -> SegmentPlan:
    plan = SegmentPlan.create(10 * MIB + 5, connections=2, min_segment=1)
    for index, segment in enumerate(plan.segments):
        length = segment.end - segment.start
        segment.done = (length, length // 3, 0)[index % 3]
    return plan


def test_checkpoint_round_trip_keeps_every_byte_written() -> None:
    plan = half_done_plan()

    restored = SegmentPlan.from_json(json.loads(plan.dumps()), size=plan.size)

    assert restored is not None
    assert [(s.start, s.end, s.done) for s in restored.segments] == [
        (s.start, s.end, s.done) for s in plan.segments
    ]
    assert restored.done_bytes == plan.done_bytes
    assert not any(s.assigned or s.received for s in restored.segments)


def test_resume_fetches_only_what_the_checkpoint_lacks() -> None:
    plan = half_done_plan()
    restored = SegmentPlan.from_json(plan.to_json(), size=plan.size)
    assert restored is not None

    fetched = []
    while (segment := restored.take(min_split=MAX_SEGMENT)) is not None:
        fetched.append((segment.offset, segment.end))

    # Each connection starts where the checkpoint says its segment stopped.
    expected = [(s.start + s.done, s.end) for s in plan.segments if s.done < s.end - s.start]
    assert fetched == expected
    assert sum(end - offset for offset, end in fetched) == plan.size - plan.done_bytes


def test_checkpoint_with_unsorted_segments_is_accepted_in_order() -> None:
    data = {"size": 300, "segments": [[200, 300, 0], [0, 100, 100], [100, 200, 5]]}

    plan = SegmentPlan.from_json(data, size=300)

    assert plan is not None
    assert [(s.start, s.end, s.done) for s in plan.segments] == [
        (0, 100, 100),
        (100, 200, 5),
        (200, 300, 0),
    ]


def test_checkpoint_of_an_empty_file() -> None:
    plan = SegmentPlan.from_json({"size": 0, "segments": []}, size=0)

    assert plan is not None
    assert plan.complete


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ({"size": 301, "segments": [[0, 301, 0]]}, "another size"),
        ({"size": 300, "segments": [[0, 100, 0], [150, 300, 0]]}, "a gap"),
        ({"size": 300, "segments": [[0, 200, 0], [100, 300, 0]]}, "an overlap"),
        ({"size": 300, "segments": [[10, 300, 0]]}, "not starting at 0"),
        ({"size": 300, "segments": [[0, 200, 0]]}, "not reaching the end"),
        ({"size": 300, "segments": [[0, 300, 301]]}, "more done than the segment"),
        ({"size": 300, "segments": [[0, 300, -1]]}, "negative progress"),
        ({"size": 300, "segments": [[0, 300]]}, "a short segment record"),
        ({"size": 300, "segments": [["a", 300, 0]]}, "a non-number"),
        ({"size": 300}, "no segments"),
        ({"segments": [[0, 300, 0]]}, "no size"),
        (None, "not an object"),
        ([], "a list"),
    ],
)
def test_checkpoint_that_does_not_describe_the_file_is_refused(data: object, why: str) -> None:
    assert SegmentPlan.from_json(data, size=300) is None, why


def test_rebalance_splits_unfinished_work_for_idle_connections() -> None:
    plan = SegmentPlan(size=64 * ALIGN, segments=[Segment(0, 64 * ALIGN, done=16 * ALIGN)])

    plan.rebalance(connections=4, min_segment=ALIGN)

    assert_tiles(plan)
    assert len(plan.segments) == 4
    assert plan.done_bytes == 16 * ALIGN, "bytes on disk stay counted"
    assert plan.segments[0].offset == 16 * ALIGN
    for segment in plan.segments[1:]:
        assert segment.start % ALIGN == 0
        assert segment.done == 0
        assert segment.remaining >= ALIGN


def test_rebalance_never_cuts_below_min_segment() -> None:
    plan = SegmentPlan(size=8 * ALIGN, segments=[Segment(0, 8 * ALIGN)])

    plan.rebalance(connections=16, min_segment=3 * ALIGN)

    assert_tiles(plan)
    assert [s.remaining for s in plan.segments] == [4 * ALIGN, 4 * ALIGN]


def test_rebalance_leaves_assigned_and_finished_segments_alone() -> None:
    plan = SegmentPlan(
        size=48 * ALIGN,
        segments=[
            Segment(0, 16 * ALIGN, done=16 * ALIGN),
            Segment(16 * ALIGN, 32 * ALIGN, assigned=True),
            Segment(32 * ALIGN, 48 * ALIGN),
        ],
    )

    # Two idle connections: the one free segment is cut in two; the others stay as they are.
    plan.rebalance(connections=2, min_segment=ALIGN)

    assert_tiles(plan)
    assert [(s.start, s.end) for s in plan.segments] == [
        (0, 16 * ALIGN),
        (16 * ALIGN, 32 * ALIGN),
        (32 * ALIGN, 40 * ALIGN),
        (40 * ALIGN, 48 * ALIGN),
    ]


def test_rebalance_of_a_finished_plan_changes_nothing() -> None:
    plan = SegmentPlan(size=4 * ALIGN, segments=[Segment(0, 4 * ALIGN, done=4 * ALIGN)])

    plan.rebalance(connections=8, min_segment=1)

    assert [(s.start, s.end) for s in plan.segments] == [(0, 4 * ALIGN)]
