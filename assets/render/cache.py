"""Results the report computes the same way every night, kept in the user's cache folder.

Bundling the Vega runtime (about 3 s), starting the Vega-Lite compiler (0.3 s per process) and
dissolving the province polygons (0.25 s) give the same result for the same inputs; a file under
``$XDG_CACHE_HOME/cakupan`` (default ``~/.cache/cakupan``), named by a hash of everything the
result depends on, keeps it across processes. A missing, unreadable, corrupt or read-only cache
only costs the computation again; a file is written whole (temporary name, then rename).
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cakupan"


def key_of(*parts) -> str:
    """A name for a result: the hash of everything it depends on."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError:     # a read-only home: compute again next time
        pass


def cached_text(name: str, key: str, compute, parse=lambda text: text):
    """``parse`` of the text ``compute()`` returns, from ``<cache>/<name>-<key>`` when that file
    is there and parses."""
    path = cache_dir() / f"{name}-{key}"
    try:
        return parse(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    text = compute()
    _write(path, text)
    return parse(text)


def cached_json(name: str, key: str, compute):
    """``compute()``'s JSON-able result, through :func:`cached_text`."""
    return cached_text(f"{name}.json", key, lambda: json.dumps(compute(), separators=(",", ":")),
                       json.loads)
