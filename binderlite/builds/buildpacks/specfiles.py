"""Turn conda and Pipenv environment files into pip requirements.

binderlite builds install from the Python package index alone, so an
``environment.yml`` becomes: its ``pip:`` section as is, plus its conda
dependencies under their package-index names (a small table maps the names
that differ; non-Python conda packages are skipped). ``Pipfile.lock`` (or,
without a lock, ``Pipfile``) becomes pinned requirements. Every decision is
returned as a note so the build log says what was mapped or skipped.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field

from ruamel.yaml import YAML

# conda-forge name → package-index name, where they differ.
CONDA_TO_PYPI = {
    "pytorch": "torch",
    "matplotlib-base": "matplotlib",
    "pytables": "tables",
    "py-opencv": "opencv-python",
    "opencv": "opencv-python",
    "python-graphviz": "graphviz",
    "pillow-simd": "pillow",
    "msgpack-python": "msgpack",
    "ipython_genutils": "ipython-genutils",
    "tensorflow-base": "tensorflow",
}
# Present in every image already, or not Python packages at all.
CONDA_SKIP = {
    "python",
    "pip",
    "setuptools",
    "wheel",
    "nodejs",
    "jupyterlab",
    "notebook",
    "jupyterhub",
    "jupyterhub-singleuser",
    "r-base",
    "r",
    "julia",
    "gcc",
    "gxx",
    "compilers",
    "make",
    "cmake",
    "git",
    "curl",
    "openssl",
    "ca-certificates",
    "libgcc-ng",
    "libstdcxx-ng",
    "mkl",
    "blas",
    "openblas",
    "libblas",
    "cudatoolkit",
    "cudnn",
    "graphviz",
    "ffmpeg",
}
CONDA_DEP = re.compile(r"^([A-Za-z0-9_.\-]+)\s*([=<>!~].*|[0-9*].*)?$")


@dataclass
class Conversion:
    """Requirements lines, an optional Python version request, and log notes."""

    requirements: list[str] = field(default_factory=list)
    python_version: str | None = None
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(line + "\n" for line in self.requirements)


def conda_version_to_pip(spec: str) -> str:
    """Translate a conda version spec (``=1.2``, ``1.2.*``, ``>=1,<2``, ``==1.2.3``) to pip syntax."""
    spec = spec.strip()
    if not spec:
        return ""
    if spec.startswith("=="):
        return "==" + spec[2:].split("=")[0].split(" ")[0]
    if re.match(r"^(>=|<=|>|<|!=|~=)", spec):
        return spec
    version = spec.lstrip("=").split("=")[0].split(" ")[0]
    return f"=={version}" if "*" in version else f"=={version}.*"


def convert_environment_yml(text: str) -> Conversion:
    """Requirements for an environment.yml, following its ``pip:`` section and conda names."""
    result = Conversion()
    data = YAML(typ="safe").load(text) or {}
    if not isinstance(data, dict):
        raise ValueError("environment.yml must be a mapping with a 'dependencies' list.")
    for dep in data.get("dependencies") or []:
        if isinstance(dep, dict):
            for req in dep.get("pip") or []:
                result.requirements.append(str(req))
            continue
        raw = str(dep).split("::")[-1].strip()
        match = CONDA_DEP.match(raw)
        if not match:
            result.notes.append(f"skipped conda dependency {raw!r}: not understood")
            continue
        name, version = match.group(1).lower(), (match.group(2) or "").strip()
        if name == "python":
            if version:
                result.python_version = version.lstrip("=").rstrip(".*").rstrip("*")
            continue
        if name in CONDA_SKIP or name.startswith(("r-", "lib")):
            result.notes.append(f"skipped conda package {name!r}: provided by the image or not a Python package")
            continue
        pypi = CONDA_TO_PYPI.get(name, name)
        req = pypi + conda_version_to_pip(version)
        if pypi != name:
            result.notes.append(f"mapped conda package {name!r} to {req!r} on the package index")
        else:
            result.notes.append(f"installing conda package {name!r} as {req!r} from the package index")
        result.requirements.append(req)
    return result


def convert_pipfile(pipfile_text: str | None, lock_text: str | None) -> Conversion:
    """Pinned requirements from Pipfile.lock, else the [packages] of Pipfile."""
    result = Conversion()
    if lock_text:
        lock = json.loads(lock_text)
        for name, info in sorted((lock.get("default") or {}).items()):
            version = info.get("version", "") if isinstance(info, dict) else ""
            result.requirements.append(f"{name}{version}")
        result.notes.append(f"installing {len(result.requirements)} pinned packages from Pipfile.lock")
        python = (lock.get("_meta", {}).get("requires") or {}).get("python_version")
        result.python_version = python
        return result
    pipfile = tomllib.loads(pipfile_text or "")
    for name, version in (pipfile.get("packages") or {}).items():
        if isinstance(version, str):
            result.requirements.append(name if version == "*" else f"{name}{version}")
        elif isinstance(version, dict) and "version" in version:
            result.requirements.append(f"{name}{version['version']}")
        else:
            result.notes.append(f"skipped Pipfile entry {name!r}: only version requirements are supported")
    result.python_version = (pipfile.get("requires") or {}).get("python_version")
    result.notes.append(f"installing {len(result.requirements)} packages from Pipfile (no Pipfile.lock)")
    return result
