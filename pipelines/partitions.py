"""Partitions: a snapshot date (dynamic: added as extracts land) and a province office."""
from __future__ import annotations

import datetime as dt

import dagster as dg

from schemas.reference import provinces_in_any_vintage

SNAPSHOTS = dg.DynamicPartitionsDefinition(name="snapshots")
PROVINCES = dg.StaticPartitionsDefinition(list(provinces_in_any_vintage()))
# keys read "<date>|<province>"; one range over whole dates covers every office of those dates
DELIVERIES = dg.MultiPartitionsDefinition({"date": SNAPSHOTS, "province": PROVINCES})
BY_DATE = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="date")


def delivery_range(first_day, last_day) -> tuple[str, str]:
    """The delivery partition keys spanning every province office of the dates first..last."""
    provinces = PROVINCES.get_partition_keys()
    return f"{first_day}|{provinces[0]}", f"{last_day}|{provinces[-1]}"


def delivery_key(key: str) -> tuple[dt.date, str]:
    day, province = key.split("|")
    return dt.date.fromisoformat(day), province


def snapshot_key(key: str) -> dt.date:
    return dt.date.fromisoformat(key)
