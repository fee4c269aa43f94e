"""The README documents every setting and every kind of link, exactly as the code defines them."""

from pathlib import Path

from binderlite.links.registry import provider_table
from binderlite.settings import settings_markdown_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_settings_table_matches_settings():
    assert settings_markdown_table() in README.read_text(), (
        "README's settings table is out of date: run python scripts/update-readme.py"
    )


def test_readme_links_table_matches_the_providers():
    assert provider_table() in README.read_text(), "README's links table is out of date: run scripts/update-readme.py"


def test_readme_has_the_two_commands():
    text = README.read_text()
    assert "bash scripts/install-debian.sh && binderlite up" in text
    assert "bash scripts/test.sh" in text
