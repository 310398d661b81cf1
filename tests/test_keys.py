"""The HMAC key: required, long enough, and pinned to the store it built. A run with another key
is refused before it touches anything, in one line that names neither key."""
from __future__ import annotations

import hashlib
import hmac

import pytest

from harness import TEST_KEY, dicts, pipeline

ROWS = ["3201014101900001,K1,A,PU,KL,,N1,X,2020-01-15,2021-10",
        "3201014101900002,K2,B,PU,KL,,N1,X,2020-01-15,2021-10"]
OTHER_KEY = "another-key-of-forty-two-bytes-0123456789"


def _files(base):
    """Every file under the store with its bytes (what a refused run must leave as it was)."""
    return {p.relative_to(base).as_posix(): p.read_bytes()
            for p in sorted(base.rglob("*")) if p.is_file() and "dagster_home" not in p.parts}


@pytest.fixture(scope="module")
def built():
    with pipeline("keys") as p:
        p.landing.potential("2021-01-01", ["KL,,100,RDP"])
        p.landing.enrollment("2021-10-31", "32.csv", ROWS)
        assert p.run().code == 0
        yield p


@pytest.mark.parametrize("key,says", [
    ("", "CAKUPAN_HMAC_KEY is not set"),
    ("short-key", "CAKUPAN_HMAC_KEY is 9 bytes long; it must have at least 32 bytes"),
])
def test_a_missing_or_short_key_is_refused_in_one_line(built, key, says):
    before = _files(built.base)
    result = built.run(env={"CAKUPAN_HMAC_KEY": key})
    assert result.code == 1
    assert says in result.err and "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert _files(built.base) == before


def test_another_key_is_refused_and_nothing_changes(built):
    built.landing.enrollment("2021-11-30", "32.csv", ROWS)   # work that would be done
    before = _files(built.base)
    result = built.run(env={"CAKUPAN_HMAC_KEY": OTHER_KEY})
    assert result.code == 1, result.out + result.err
    assert "is not the key" in result.err and "key fingerprint" in result.err
    assert "Traceback" not in result.err
    for secret in (OTHER_KEY, TEST_KEY):
        assert secret not in result.out + result.err
    assert _files(built.base) == before
    (built.landing.root / "enrollment" / "2021-11-30" / "32.csv").unlink()


def test_the_stored_pseudonym_is_rfc_2104_hmac_sha256_of_the_nik(built):
    # the first 128 bits of HMAC-SHA256, by the standard library (the stored UUID's 32 hex digits)
    got = dicts(built.warehouse, "SELECT DISTINCT replace(nik_hmac::VARCHAR, '-', '') AS h "
                "FROM enrollment_rows WHERE nik_hmac IS NOT NULL ORDER BY 1")
    want = sorted(hmac.new(TEST_KEY.encode(), nik.encode(), hashlib.sha256).hexdigest()[:32]
                  for nik in ("3201014101900001", "3201014101900002"))
    assert [r["h"] for r in got] == want


def test_the_lake_keeps_all_128_bits_of_the_pseudonym(built):
    # Parquet has no 128-bit integer: DuckDB writes a UHUGEINT as a DOUBLE (53 bits). The stored
    # pseudonym and the people file's person key must be 16-byte fixed-width columns whose values
    # are the standard library's HMAC-SHA256, first 16 bytes.
    import pyarrow.parquet as pq

    want = {hmac.new(TEST_KEY.encode(), nik.encode(), hashlib.sha256).digest()[:16]
            for nik in ("3201014101900001", "3201014101900002")}
    lake = built.warehouse.with_name(built.warehouse.stem + ".lake")
    for folder, column in (("deliveries", "nik_hmac"), ("people", "person")):
        files = sorted((lake / folder).rglob("*.parquet"))
        assert files, folder
        for f in files:
            stored = pq.ParquetFile(f).schema.column(pq.ParquetFile(f).schema.names.index(column))
            assert (stored.physical_type, stored.length) == ("FIXED_LEN_BYTE_ARRAY", 16), f
            values = pq.read_table(f, columns=[column]).column(column).to_pylist()
            assert {v.bytes for v in values if v is not None} == want, f


def test_the_store_records_a_fingerprint_never_the_key(built):
    for name, data in _files(built.base).items():
        assert TEST_KEY.encode() not in data, name
        assert hashlib.sha256(TEST_KEY.encode()).hexdigest().encode() not in data, name
