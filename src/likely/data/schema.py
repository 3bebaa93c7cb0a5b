"""The canonical shape of ingested data: the contract between data-in and everything after it.

Events (one row per thing a customer did), stored as Parquet parts under
``<workspace>/data/<dataset>/``:

==============  ==================  ===========================================================
column          type                meaning
==============  ==================  ===========================================================
profile_id      string, required    the customer's identity (one namespace per dataset)
timestamp       timestamp, req.     when it happened, in UTC (stored without a zone)
event_type      string, nullable    e.g. ``commerce.purchases``, ``web.webpagedetails.pageViews``
value           float64, nullable   monetary value (purchases); null where none
event_id        string, nullable    the event's own id (an order line id, XDM ``_id``): ingest
                                    keeps one row per id; rows without one are all kept
*anything*      as in the source    every other source column; nested JSON flattened to
                                    dotted names (``commerce.order.priceTotal``)
==============  ==================  ===========================================================

Profiles (one row per customer, or one per customer per ``updated_at`` for attributes that
change over time): ``profile_id`` (string, required), ``updated_at`` (timestamp UTC, optional),
then any attribute columns.

Id columns (``profile_id``, ``event_id``) are text. A numeric id becomes its digits: a float column
(an integer column with nulls, as pandas writes one) gives ``"123"``, never ``"123.0"``, so the
same customer has the same id whichever file it came from.
"""

from __future__ import annotations

from typing import Literal

DatasetKind = Literal["events", "profiles"]
DATASET_KINDS: tuple[DatasetKind, ...] = ("events", "profiles")

PROFILE_ID = "profile_id"
TIMESTAMP = "timestamp"
EVENT_TYPE = "event_type"
VALUE = "value"
UPDATED_AT = "updated_at"
EVENT_ID = "event_id"

#: Identity columns, stored as text (numbers as their digits).
ID_COLUMNS: tuple[str, ...] = (PROFILE_ID, EVENT_ID)

#: Canonical columns per dataset kind and whether each is required.
CANONICAL: dict[DatasetKind, dict[str, bool]] = {
    "events": {PROFILE_ID: True, TIMESTAMP: True, EVENT_TYPE: False, VALUE: False,
               EVENT_ID: False},
    "profiles": {PROFILE_ID: True, UPDATED_AT: False},
}

#: Standard event types (names as in the product spec and the demo generator).
PURCHASE = "commerce.purchases"
PRODUCT_VIEW = "commerce.productViews"
CART_ADD = "commerce.productListAdds"
CHECKOUT = "commerce.checkouts"
PAGE_VIEW = "web.webpagedetails.pageViews"
LINK_CLICK = "web.webinteraction.linkClicks"
EMAIL_SENT = "directMarketing.emailSent"
EMAIL_OPENED = "directMarketing.emailOpened"
EMAIL_CLICKED = "directMarketing.emailClicked"
APP_LAUNCH = "application.launches"
SEARCH = "search"
