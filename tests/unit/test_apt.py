"""apt.txt: only package names reach the root RUN line (repo2docker pastes whatever starts like one)."""

from __future__ import annotations

import pytest

from binderlite.builds.buildpacks.apt import check_apt_packages
from binderlite.errors import UnsafeRepositoryError


def test_names_versions_comments_and_blank_lines():
    text = (
        "# tools for the notebooks\n"
        "jq\n"
        "\n"
        "   curl   \n"
        "libgl1-mesa-dri  # for matplotlib's backend\n"
        "g++\n"
        "libstdc++6=12.2.0-14\n"
        "python3.11-venv=3.11.2-6+deb12u2\n"
        "tzdata=2024a-0+deb12u1\n"
        "bash=1:5.2.15-2~bpo12+1\n"
        "r-base-core.extra\n"
        "jq\n"
    )
    assert check_apt_packages(text) == [
        "jq",
        "curl",
        "libgl1-mesa-dri",
        "g++",
        "libstdc++6=12.2.0-14",
        "python3.11-venv=3.11.2-6+deb12u2",
        "tzdata=2024a-0+deb12u1",
        "bash=1:5.2.15-2~bpo12+1",
        "r-base-core.extra",
    ], "each once, in order"


def test_windows_line_endings_and_an_empty_file():
    assert check_apt_packages("jq\r\ncurl\r\n") == ["jq", "curl"]
    assert check_apt_packages("") == []
    assert check_apt_packages("# nothing\n\n   \n") == []


@pytest.mark.parametrize(
    "line",
    [
        "less; chmod 4755 /bin/bash",  # the attack from the issue: passes repo2docker's check
        "less;chmod 4755 /bin/bash",
        "less && curl http://169.254.169.254/",
        "less || true",
        "less | sh",
        "less & sleep 1",
        "less $(id)",
        "less$(id)",
        "less`id`",
        "less > /etc/sudoers",
        "less\tcurl",
        "jq curl",  # one package per line
        "jq\\",  # a continuation would swallow the next line of the RUN
        "jq'",
        'jq"',
        "jq=1.6; id",
        "jq=$(id)",
        "jq=",
        "jq=latest",  # versions start with a digit
        "-y",  # an option, not a package
        "--allow-unauthenticated",
        "./evil.deb",
        "/tmp/evil.deb",
        "jq:amd64",  # architecture qualifiers are not names
        "jq/bookworm-backports",
        "JQ",  # Debian names are lower case
        "j",  # at least two characters
        "+jq",
        ".jq",
        "jq*",
        "jq?",
        "j{q,x}",
        "jq\x00",
        "jq\x1b[2K",
        "lеss",  # a Cyrillic "е"
        "ｊｑ",  # full-width letters
        "a" * 300 + ";id",
    ],
)
def test_anything_else_is_refused_naming_the_line(line):
    text = f"# header\njq\n{line}\ncurl\n"
    with pytest.raises(UnsafeRepositoryError) as info:
        check_apt_packages(text)
    message = info.value.message
    assert message.startswith("apt.txt line 3 is not a Debian package name:"), message
    assert "postBuild" in message
    assert len(message) < 400, "a long line is shortened in the message"


@pytest.mark.parametrize("separator", ["\x0b", "\x0c", "\x1c", "\x85", "\u2028"])
def test_only_real_line_ends_separate_packages(separator):
    """repo2docker reads apt.txt line by line (\\n, \\r, \\r\\n): any other separator stays inside the entry."""
    with pytest.raises(UnsafeRepositoryError, match="line 1"):
        check_apt_packages(f"jq{separator}curl\n")
    assert check_apt_packages("jq\rcurl\r\nless\n") == ["jq", "curl", "less"]


def test_stock_repo2docker_pastes_the_attack_into_a_root_script(tmp_path, monkeypatch):
    """Why this check exists: repo2docker's own check lets the line through to a root RUN."""
    from repo2docker.buildpacks.base import BaseImage

    (tmp_path / "apt.txt").write_text("less; chmod 4755 /bin/bash\n")
    monkeypatch.chdir(tmp_path)
    ((user, script),) = BaseImage("binderlite/base:bookworm").get_preassemble_scripts()
    assert user == "root" and "less; chmod 4755 /bin/bash" in script
    with pytest.raises(UnsafeRepositoryError):
        check_apt_packages((tmp_path / "apt.txt").read_text())
