"""Segments: audiences from scores, reasons and profile attributes.

A segment's rule is a condition (the same whitelist parser as goals) over ``<instance>.<field>``
(a clv instance adds its value fields: :func:`rules.score_fields`) and profile attributes,
e.g. ``"purchase-30d".bucket = 'High' AND loyalty_tier IN ('gold')``.
Published segments are materialised after every run of the instances they read, so membership
has a history. Segments read the run outputs through the catalog; nothing here changes a run.

- :mod:`rules`     what a rule may read, and checking it
- :mod:`members`   who matches at a score date (an Ibis query over the runs' scores)
- :mod:`store`     the catalog rows: create, edit, hide, delete
- :mod:`publish`   memberships kept per score date, entered/left, automatic segments
- :mod:`describe`  previews, a segment shown in words, members as of a date
"""

from likely.segments.describe import (
    members_date,
    preview,
    rule_in_words,
    segment_members,
    show,
    size,
)
from likely.segments.members import basis, members
from likely.segments.publish import (
    after_run,
    history,
    memberships,
    publish,
    publish_history,
    refresh_automatic,
)
from likely.segments.rules import (
    SCORE_FIELDS,
    VALUE_FIELDS,
    available_fields,
    bucket_rule,
    check_rule,
    score_fields,
)
from likely.segments.store import (
    Segment,
    create_segment,
    delete_segment,
    edit_segment,
    get_segment,
    list_segments,
)

__all__ = ["SCORE_FIELDS", "VALUE_FIELDS", "Segment", "after_run", "available_fields", "basis",
           "bucket_rule", "check_rule", "create_segment", "delete_segment", "edit_segment",
           "get_segment", "history", "list_segments", "members", "members_date", "memberships",
           "preview", "publish", "publish_history", "refresh_automatic", "rule_in_words",
           "score_fields", "segment_members", "show", "size"]
