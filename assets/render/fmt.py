"""Indonesian number and date formatting for the report (thousands `.`, decimal comma).

Every figure shown in the HTML goes through these functions, so the tests can format the serving
file's values independently and compare. Negative numbers use the minus sign U+2212, percentages
a no-break space before `%`.
"""
from __future__ import annotations

import datetime as _dt
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from schemas.enrollment import TIERS

MINUS = "\u2212"
NBSP = "\u00a0"
DASH = "\u2013"   # shown for a missing value (NULL)

MONTHS = ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus",
          "September", "Oktober", "November", "Desember")
MONTHS_SHORT = ("Jan", "Feb", "Mar", "Apr", "Mei", "Jun", "Jul", "Agu", "Sep", "Okt", "Nov",
                "Des")
DAYS = ("Minggu", "Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu")
DAYS_SHORT = ("Min", "Sen", "Sel", "Rab", "Kam", "Jum", "Sab")

# d3-format / d3-time-format locales for the charts (Vega takes them as the View's locale).
D3_NUMBER = {"decimal": ",", "thousands": ".", "grouping": [3], "currency": ["Rp", ""],
             "minus": MINUS, "percent": "%"}
D3_TIME = {"dateTime": "%A, %e %B %Y %H.%M.%S", "date": "%d/%m/%Y", "time": "%H.%M.%S",
           "periods": ["AM", "PM"], "days": list(DAYS), "shortDays": list(DAYS_SHORT),
           "months": list(MONTHS), "shortMonths": list(MONTHS_SHORT)}

METRIC_LABELS = {"active": "peserta aktif", "inactive": "peserta tidak aktif",
                 "potential": "potensi", "penetration_pct": "penetrasi"}


def _group(digits: str) -> str:
    """'1234567,5' style: swap the separators of Python's en-US formatting."""
    return digits.replace(",", "\x00").replace(".", ",").replace("\x00", ".")


def num(value, decimals: int = 0, sign: bool = False) -> str:
    """55589 -> '55.589'; 20.4357 (decimals=2) -> '20,44'; sign=True adds '+' / U+2212."""
    if value is None:
        return DASH
    text = _group(f"{abs(value):,.{decimals}f}")
    zero = text.strip("0,.") == ""
    if value < 0 and not zero:
        return MINUS + text
    if sign and not zero:
        return "+" + text
    return text


def pct(value, decimals: int = 2, sign: bool = False) -> str:
    """20.4357 -> '20,44 %' (no-break space)."""
    if value is None:
        return DASH
    return num(value, decimals, sign) + NBSP + "%"


def pp(value, decimals: int = 2) -> str:
    """A change of penetration: +0,80 poin (percentage points)."""
    if value is None:
        return DASH
    return num(value, decimals, sign=True) + NBSP + "poin"


def round_half_up(value, decimals: int) -> Decimal:
    return Decimal(repr(float(value))).quantize(Decimal(1).scaleb(-decimals), ROUND_HALF_UP)


def truncate(value, decimals: int) -> Decimal:
    return Decimal(repr(float(value))).quantize(Decimal(1).scaleb(-decimals), ROUND_DOWN)


def decimals_of(value) -> int:
    """Decimals actually written in a DECIMAL value (trailing zeros dropped): 22.310000 -> 2."""
    if value is None:
        return 0
    d = Decimal(str(value)).normalize()
    return max(0, -d.as_tuple().exponent)


def date_long(day) -> str:
    """2021-10-31 -> '31 Oktober 2021'."""
    if day is None:
        return DASH
    day = _as_date(day)
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def date_short(day) -> str:
    """2021-10-31 -> 'Okt 2021'."""
    day = _as_date(day)
    return f"{MONTHS_SHORT[day.month - 1]} {day.year}"


def iso(day) -> str | None:
    return None if day is None else _as_date(day).isoformat()


def _as_date(day) -> _dt.date:
    if isinstance(day, _dt.datetime):
        return day.date()
    if isinstance(day, _dt.date):
        return day
    return _dt.date.fromisoformat(str(day)[:10])


def tier_label(code: str | None) -> str:
    if code is None:
        return DASH
    if code == "NASIONAL":
        return "Nasional"
    return TIERS[code][0] if code in TIERS else code


def tier_name(code: str | None) -> str:
    """'KL (Kementerian/Lembaga)', 'Nasional'."""
    if code is None or code == "NASIONAL" or code not in TIERS:
        return tier_label(code)
    label = TIERS[code][0]
    return code if label == code else f"{code} ({label})"
