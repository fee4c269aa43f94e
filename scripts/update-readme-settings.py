"""Regenerate the settings table in README.md from the Settings object."""

import re
from pathlib import Path

from binderlite.settings import settings_markdown_table

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"

text = README.read_text()
pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
README.write_text(pattern.sub(f"{START}\n{settings_markdown_table()}{END}", text))
