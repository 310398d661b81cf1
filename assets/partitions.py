"""Partitions: one per delivery (snapshot date and province office) and one per snapshot date.

Both are dynamic: the planner adds a key when a file lands, so there are no empty partitions (a
cross product of dates and the 38 offices would hold every office that did not deliver, and
every office that did not exist yet). Keys are added in date order, so the deliveries of one
night form one contiguous range and one run.
"""
from __future__ import annotations

import datetime as dt

import dagster as dg

DELIVERIES = dg.DynamicPartitionsDefinition(name="deliveries")   # "YYYY-MM-DD|PP"
SNAPSHOTS = dg.DynamicPartitionsDefinition(name="snapshots")     # "YYYY-MM-DD"
# Dagster has no built-in many-to-one mapping between two dynamic partitions definitions (and a
# custom one is invisible to the daemon and the UI): a snapshot depends on "all deliveries",
# which orders runs correctly; the deliveries it really reads are those of its date.
FROM_DELIVERIES = dg.AllPartitionMapping()


def delivery_key(day: dt.date, province: str) -> str:
    return f"{day}|{province}"


def parse_delivery(key: str) -> tuple[dt.date, str]:
    day, province = key.split("|")
    return dt.date.fromisoformat(day), province


def parse_snapshot(key: str) -> dt.date:
    return dt.date.fromisoformat(key)
