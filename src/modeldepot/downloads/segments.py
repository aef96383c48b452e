"""Segment plans: how one file is cut into byte ranges fetched over several connections.

A plan tiles ``[0, size)`` with segments. Each connection takes an unassigned segment;
when none is left it *steals* half of the largest segment still in flight (as aria2 does),
so every connection stays busy until the last byte. Progress is checkpointed as the list
of segments with how much of each is on disk, so after a crash each connection re-fetches
at most the part of its segment written after the last checkpoint.

Everything here is pure and synchronous; the transfer module owns IO.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

ALIGN = 64 * 1024
MAX_SEGMENT = 32 * 1024 * 1024


@dataclass
class Segment:
    start: int
    end: int  # exclusive; may shrink when another connection steals the tail
    done: int = 0  # bytes written from ``start``
    assigned: bool = False
    received: int = 0  # bytes read from the network but not yet written (in a buffer)

    @property
    def offset(self) -> int:
        return self.start + self.done

    @property
    def remaining(self) -> int:
        return max(0, self.end - self.offset)

    @property
    def complete(self) -> bool:
        return self.offset >= self.end


@dataclass
class SegmentPlan:
    size: int
    segments: list[Segment] = field(default_factory=list)

    @classmethod
    def create(cls, size: int, *, connections: int, min_segment: int) -> SegmentPlan:
        """Cut ``size`` bytes into aligned segments, about four per connection.

        Connections take the lowest segment first, so the written prefix (which the
        hasher follows) grows steadily and at most one window of segments is left to
        hash after the last byte; segments are capped so that window stays small.
        """
        if size <= 0:
            return cls(size=0, segments=[])
        step = min(max(min_segment, -(-size // (4 * max(connections, 1)))), MAX_SEGMENT)
        step = max(ALIGN, -(-step // ALIGN) * ALIGN)
        bounds = [*range(0, size, step), size]
        return cls(size=size, segments=[Segment(a, b) for a, b in itertools.pairwise(bounds)])

    @property
    def done_bytes(self) -> int:
        return sum(min(s.done, s.end - s.start) for s in self.segments)

    @property
    def complete(self) -> bool:
        return all(s.complete for s in self.segments)

    @property
    def open_segments(self) -> int:
        """Segments still to fetch: one connection each at the start; more connections
        would only steal from requests already under way."""
        return sum(not s.complete for s in self.segments)

    def contiguous_prefix(self) -> int:
        """Bytes from offset 0 that are all written (what a sequential hasher may read)."""
        frontier = 0
        for segment in sorted(self.segments, key=lambda s: s.start):
            if segment.start != frontier:
                break
            frontier = segment.offset if not segment.complete else segment.end
            if not segment.complete:
                break
        return frontier

    def rebalance(self, *, connections: int, min_segment: int) -> None:
        """Split unfinished segments (largest first) until there is one per connection,
        as long as each piece stays at least ``min_segment`` (used when resuming)."""
        while True:
            unfinished = [s for s in self.segments if not s.complete and not s.assigned]
            if len(unfinished) >= connections or not unfinished:
                return
            victim = max(unfinished, key=lambda s: s.remaining)
            if victim.remaining < 2 * min_segment:
                return
            middle = -(-(victim.offset + victim.remaining // 2) // ALIGN) * ALIGN
            if not victim.offset < middle < victim.end:
                return
            self.segments.append(Segment(start=middle, end=victim.end))
            victim.end = middle
            self.segments.sort(key=lambda s: s.start)

    def take(self, *, min_split: int) -> Segment | None:
        """An unassigned incomplete segment, else half of the largest one in flight."""
        for segment in self.segments:
            if not segment.assigned and not segment.complete:
                segment.assigned = True
                return segment
        return self._steal(min_split)

    def _steal(self, min_split: int) -> Segment | None:
        def unread(segment: Segment) -> int:
            return segment.remaining - segment.received

        candidates = [s for s in self.segments if s.assigned and unread(s) >= 2 * min_split]
        if not candidates:
            return None
        victim = max(candidates, key=unread)
        position = victim.offset + victim.received
        middle = -(-(position + unread(victim) // 2) // ALIGN) * ALIGN
        if middle >= victim.end or middle <= position:
            return None
        stolen = Segment(start=middle, end=victim.end, assigned=True)
        victim.end = middle
        self.segments.append(stolen)
        self.segments.sort(key=lambda s: s.start)
        return stolen

    def release(self, segment: Segment) -> None:
        segment.assigned = False

    def reset(self) -> None:
        """Forget all progress: one segment for the whole file (a restart from 0)."""
        self.segments = [Segment(0, self.size)] if self.size > 0 else []

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "segments": [[s.start, s.end, s.done] for s in self.segments]}

    @classmethod
    def from_json(cls, data: Any, *, size: int) -> SegmentPlan | None:
        """A checkpointed plan, or None if it does not describe a file of ``size`` bytes."""
        try:
            if data["size"] != size:
                return None
            segments = [Segment(int(a), int(b), int(d)) for a, b, d in data["segments"]]
        except (KeyError, TypeError, ValueError):
            return None
        segments.sort(key=lambda s: s.start)
        expected = 0
        for segment in segments:
            if segment.start != expected or not 0 <= segment.done <= segment.end - segment.start:
                return None
            expected = segment.end
        if expected != size and size > 0:
            return None
        return cls(size=size, segments=segments)

    def dumps(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":")).encode()
