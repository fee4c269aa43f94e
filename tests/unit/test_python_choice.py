"""The Python a build uses: versions asked for × versions this machine has → a choice, or an error."""

import pytest

from binderlite.builds.buildpacks.pythons import PythonOffer, PythonRequest, choose_python, major_minor
from binderlite.errors import BuildFailedError

# The default set: bookworm (base_image) 3.11, bullseye 3.9 + 2.7, trixie 3.13.
MACHINE = [
    PythonOffer("3.11", "base:bookworm", "3.11"),
    PythonOffer("3.9", "base:bullseye", "3.9"),
    PythonOffer("2.7", "base:bullseye", "3.9"),
    PythonOffer("3.13", "base:trixie", "3.13"),
]


def choose(version, offers=MACHINE, requires=None, default="3.11"):
    return choose_python(PythonRequest(version, "runtime.txt", requires), offers, default)


@pytest.mark.parametrize(
    "asked, version, image, exact",
    [
        ("3.9", "3.9", "base:bullseye", True),
        ("3.11", "3.11", "base:bookworm", True),
        ("3.13", "3.13", "base:trixie", True),
        ("2.7", "2.7", "base:bullseye", True),
        ("3", "3.11", "base:bookworm", True),  # a major version alone: the default's
        ("2", "2.7", "base:bullseye", True),
        (None, "3.11", "base:bookworm", False),
        ("3.10", "3.11", "base:bookworm", False),  # tie 3.9/3.11: the default
        ("3.12", "3.11", "base:bookworm", False),  # tie 3.11/3.13: the default
        ("3.6", "3.9", "base:bullseye", False),  # the nearest, however far
        ("3.14", "3.13", "base:trixie", False),
        ("2.6", "2.7", "base:bullseye", False),  # never across major versions
    ],
)
def test_exact_else_nearest_of_the_same_major(asked, version, image, exact):
    choice = choose(asked)
    assert (choice.version, choice.offer.image, choice.exact) == (version, image, exact)


def test_a_tie_without_the_default_goes_to_the_older():
    offers = [PythonOffer("3.9", "a", "3.9"), PythonOffer("3.11", "b", "3.11"), PythonOffer("3.13", "c", "3.13")]
    assert choose("3.12", offers, default="3.9").version == "3.11"
    assert choose("3.10", offers, default="3.13").version == "3.9"


def test_python_2_is_a_separate_kernel_beside_python_3():
    choice = choose("2.7")
    assert choice.separate_kernel and choice.offer.server_version == "3.9"
    assert not choose("3.9").separate_kernel


def test_no_python_of_that_major_is_an_error_naming_what_exists():
    with pytest.raises(BuildFailedError) as err:
        choose("2.7", [PythonOffer("3.11", "base", "3.11")])
    assert "runtime.txt asks for Python 2.7; this machine has Python 3.11" in err.value.message
    with pytest.raises(BuildFailedError, match="asks for Python 4.0; this machine has Python 2.7, 3.9, 3.11, 3.13"):
        choose("4.0")


def test_nothing_available_says_how_to_make_it():
    with pytest.raises(BuildFailedError, match="binderlite base-image"):
        choose("3.11", [])


def test_the_substitution_is_said_in_the_log_and_in_a_failure():
    choice = choose("3.6")
    assert "asks for Python 3.6, which this machine does not have (it has 2.7, 3.9, 3.11, 3.13)" in choice.note()
    assert "using the nearest, Python 3.9" in choice.note()
    assert "Python 3.6 was asked for by runtime.txt; this machine has 2.7, 3.9, 3.11, 3.13" in choice.substitution()
    assert choose("3.9").substitution() == ""
    assert choose(None).substitution() == ""


def test_requires_python_chooses_when_nothing_is_asked():
    assert choose(None, requires=">=3.12").version == "3.13"
    assert choose(None, requires=">=3.8,<3.10").version == "3.9"
    assert choose(None, requires=">=3.8").version == "3.11"
    with pytest.raises(BuildFailedError, match="a Python allowed by requires-python '>=3.14'"):
        choose(None, requires=">=3.14")


def test_requires_python_contradicting_an_explicit_version_is_an_error():
    with pytest.raises(BuildFailedError, match="asks for Python 3.9, but pyproject.toml's requires-python is '>=3.10'"):
        choose("3.9", requires=">=3.10")
    assert choose("3.12", requires=">=3.12").version == "3.13"  # the nearest the package allows
    assert choose("3.13", requires="not a specifier").version == "3.13"


def test_the_default_image_wins_when_two_have_the_version():
    offers = [PythonOffer("3.13", "trixie", "3.13"), PythonOffer("3.13", "forky", "3.13")]
    assert choose("3.13", offers, default="3.13").offer.image == "trixie"


@pytest.mark.parametrize(
    "text, version",
    [("3.9", "3.9"), ("3.9.18", "3.9"), ("3.9.*", "3.9"), ("3", "3"), (" 3.12\n", "3.12")]
    + [(bad, None) for bad in ("", None, "pypy3.9", ">=3.8", "3.8; id", "system", "3.x")],
)
def test_only_a_version_is_read(text, version):
    assert major_minor(text) == version
