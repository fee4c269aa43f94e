"""Regenerate the tables in README.md that come from the code: the settings and the kinds of link."""

import re
from pathlib import Path

from binderlite.links.registry import provider_table
from binderlite.settings import settings_markdown_table

README = Path(__file__).resolve().parent.parent / "README.md"
TABLES = {"settings-table": settings_markdown_table(), "links-table": provider_table()}

text = README.read_text()
for name, table in TABLES.items():
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S).sub(f"{start}\n{table}{end}", text)
README.write_text(text)
