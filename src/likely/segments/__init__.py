"""Segments: named rules over the latest scores of one or more instances.

A segment's rule is a condition (the same whitelist parser as goals) over ``<instance>.<field>``
columns, e.g. ``"purchase-30d".bucket = 'High'``. Segments read the run outputs through the
catalog; nothing here changes a run.
"""

from likely.segments.store import (
    SCORE_FIELDS,
    Segment,
    bucket_rule,
    create_segment,
    delete_segment,
    get_segment,
    list_segments,
    segment_size,
)

__all__ = ["SCORE_FIELDS", "Segment", "bucket_rule", "create_segment", "delete_segment",
           "get_segment", "list_segments", "segment_size"]
