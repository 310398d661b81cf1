"""The README's table reference is generated from schemas/tables.py and must not drift."""
from pathlib import Path

from schemas.tables import markdown

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_table_reference_matches_the_declarations():
    text = README.read_text(encoding="utf-8")
    begin = text.index("<!-- tables:begin")
    body = text[text.index("\n", begin) + 1:text.index("<!-- tables:end -->")]
    assert body.strip() == markdown().strip()
