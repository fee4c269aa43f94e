"""The R packages a repository names, read from its files without running them.

``install.R`` is R code that runs at build time; what it installs is known
for sure only by running it. Before that, binderlite reads the names it gives
``install.packages()`` as text (``"x"``, ``c("x", "y")``, ``pkgs = ...``),
and the ``Depends``, ``Imports`` and ``LinkingTo`` of a ``DESCRIPTION``, so
Debian's ``r-cran-*`` packages for them can be installed first, and checked
after. Names built at run time are not seen: ``install.R`` still installs
them, from the CRAN mirror. Only names R allows reach a Dockerfile.
"""

from __future__ import annotations

import re

R_NAME = re.compile(r"[A-Za-z][A-Za-z0-9.]*[A-Za-z0-9]")  # Writing R Extensions, 1.1.1
# Part of R itself: nothing to install.
BASE_R = frozenset(
    "R base compiler datasets graphics grDevices grid methods parallel splines stats stats4 tcltk tools utils".split()
)
INSTALL_CALL = re.compile(r"(?<![\w.])install\.packages\s*\(")
STRING = re.compile(r"""(["'])((?:\\.|(?!\1).)*)\1""")
NAMED_ARGUMENT = re.compile(r"\s*([A-Za-z.][\w.]*)\s*=(?!=)")
ARCHIVE = re.compile(r"\.(tar\.gz|tgz|zip)$")  # a package file, not a name


def _without_comments(code: str) -> str:
    """R code with ``#`` comments removed (not inside strings)."""
    out, quote, i = [], "", 0
    while i < len(code):
        ch = code[i]
        if quote:
            if ch == "\\":
                out.append(code[i : i + 2])
                i += 2
                continue
            quote = "" if ch == quote else quote
        elif ch in "\"'`":
            quote = ch
        elif ch == "#":
            while i < len(code) and code[i] != "\n":
                i += 1
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _arguments(code: str, start: int) -> list[str]:
    """The top-level arguments of the call whose ``(`` ends just before ``start``."""
    args, depth, quote, begin, i = [], 0, "", start, start
    while i < len(code):
        ch = code[i]
        if quote:
            i += 2 if ch == "\\" else 1
            quote = "" if ch == quote else quote
            continue
        if ch in "\"'`":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}" and depth:
            depth -= 1
        elif ch == ")" or (ch == "," and not depth):
            args.append(code[begin:i])
            begin = i + 1
            if ch == ")":
                break
        i += 1
    return args


def install_r_packages(code: str) -> list[str]:
    """Package names given as text to ``install.packages()`` (its ``pkgs``) in install.R, in order."""
    code = _without_comments(code)
    names: list[str] = []
    for call in INSTALL_CALL.finditer(code):
        args = _arguments(code, call.end())
        named = {m.group(1): a[m.end() :] for a in args if (m := NAMED_ARGUMENT.match(a))}
        positional = [a for a in args if not NAMED_ARGUMENT.match(a)]
        if named.get("repos", "").strip() == "NULL":
            continue  # local files, not names
        pkgs = named.get("pkgs", positional[0] if positional else "")
        for literal in STRING.finditer(pkgs):
            name = literal.group(2)
            if R_NAME.fullmatch(name) and not ARCHIVE.search(name) and name not in BASE_R and name not in names:
                names.append(name)
    return names


def description_fields(text: str) -> dict[str, str]:
    """A DESCRIPTION's fields (Debian control format: continuation lines start with white space)."""
    fields: dict[str, str] = {}
    current = ""
    for line in text.splitlines():
        if line[:1].isspace() and current:
            fields[current] += " " + line.strip()
        elif ":" in line:
            current, _, value = line.partition(":")
            current = current.strip()
            fields[current] = value.strip()
    return fields


def description_dependencies(text: str) -> list[str]:
    """The packages a DESCRIPTION's Depends, Imports and LinkingTo name (without R and R's own)."""
    fields = description_fields(text)
    names: list[str] = []
    for field in ("Depends", "Imports", "LinkingTo"):
        for entry in fields.get(field, "").split(","):
            name = entry.split("(")[0].strip()
            if R_NAME.fullmatch(name) and name not in BASE_R and name not in names:
                names.append(name)
    return names
