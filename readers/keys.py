"""The HMAC key that pseudonymises NIKs (UU 27/2022): read, checked, pinned to the warehouse.

A NIK is stored only as HMAC-SHA256 under the key in ``CAKUPAN_HMAC_KEY`` (RFC 2104, computed
in DuckDB SQL over ``sha256()``: DuckDB has no ``hmac()``). The warehouse and its lake record a
*fingerprint* of the key (itself a keyed hash of a fixed text, never the key): a run with another
key would give the same people other pseudonyms and silently change every figure that follows
people across snapshots or tiers, so it refuses to start. Re-keying means rebuilding the
warehouse from the landing files (README, "Re-keying").
"""
from __future__ import annotations

import hashlib
import hmac
import os

MIN_KEY_BYTES = 32
ENV = "CAKUPAN_HMAC_KEY"
# DuckDB has no hmac(): RFC 2104 over sha256(), the pads bound as BLOBs (two sha256 calls per
# row). What is stored is its first 128 bits (truncation as RFC 2104 section 5 and RFC 4868's
# HMAC-SHA-256-128 allow; 2^-128 per pair makes a collision among 10^8 people ~1e-23) as a UUID:
# a 16-byte fixed-width key, cheap to hash and join, that Parquet keeps whole
# (FIXED_LEN_BYTE_ARRAY).
# Not UHUGEINT: DuckDB writes a UHUGEINT column to Parquet as DOUBLE, which keeps 53 bits. Not the
# 32-byte BLOB as well: writing a second column of random bytes cost 2.2 s a scale-1 snapshot,
# and nothing reads the other 128 bits (README, Performance).
HMAC_HEX = "sha256($opad || unhex(sha256($ipad || encode(nik))))"
# the stored pseudonym of the column ``nik``
NIK_HMAC = f"CAST(left({HMAC_HEX}, 32) AS UUID)"


class KeyProblem(RuntimeError):
    """The key is missing, too short or not the warehouse's: one clear sentence."""


def hmac_key(env: dict | None = None) -> bytes:
    value = (env if env is not None else os.environ).get(ENV)
    if not value:
        raise KeyProblem(
            f"{ENV} is not set: cakupan stores NIK only as a keyed HMAC-SHA256 and needs the key. "
            "Set it from your secret store (for the demo, `make run` creates data/demo-hmac.key).")
    raw = value.encode("utf-8")
    if len(raw) < MIN_KEY_BYTES:
        raise KeyProblem(f"{ENV} is {len(raw)} bytes long; it must have at least "
                         f"{MIN_KEY_BYTES} bytes (e.g. `openssl rand -hex 32`)")
    return raw


def pads(key: bytes) -> tuple[bytes, bytes]:
    """RFC 2104 inner and outer padded keys for HMAC-SHA256."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def fingerprint(key: bytes) -> str:
    """What identifies the key without revealing it."""
    return hmac.new(key, b"cakupan key fingerprint v1", hashlib.sha256).hexdigest()[:32]


def mismatch_message(where: str, pinned: str, given: str) -> str:
    return (f"{ENV} is not the key {where} was built with (key fingerprint {given}, expected "
            f"{pinned}): the same people would get other pseudonyms and every figure would move. "
            "Use the original key, or re-key by rebuilding from the landing files (README, "
            "\"Re-keying\").")
