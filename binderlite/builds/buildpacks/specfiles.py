"""Turn conda and Pipenv environment files into pip requirements.

binderlite builds install from the Python package index alone, so an
``environment.yml`` becomes: its ``pip:`` section as is, plus its conda
dependencies under their package-index names (``CONDA_TO_PYPI`` maps the
names that differ, metapackages included; non-Python conda packages are
skipped, each with a *warning* the launch page and the CLI show, saying what
to put in apt.txt instead). ``Pipfile.lock`` (or, without a lock,
``Pipfile``) becomes pinned requirements. Every other decision is a note in
the build log.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field

from ruamel.yaml import YAML

# conda-forge name → requirement on the package index, where they differ. Metapackages become the
# extras that bring what conda's metapackage brings (conda's `dask` is dask + distributed + bokeh
# + pandas + pyarrow + …, which is PyPI's `dask[complete]`).
CONDA_TO_PYPI = {
    "dask": "dask[complete]",
    "dask-core": "dask",
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "torchvision": "torchvision",
    "matplotlib-base": "matplotlib",
    "pytables": "tables",
    "py-opencv": "opencv-python-headless",
    "opencv": "opencv-python-headless",
    "libopencv": "opencv-python-headless",
    "python-graphviz": "graphviz",
    "pillow-simd": "pillow",
    "msgpack-python": "msgpack",
    "ipython_genutils": "ipython-genutils",
    "tensorflow-base": "tensorflow",
    "tensorflow-cpu": "tensorflow-cpu",
    "pyqt": "PyQt5",
    "netcdf4": "netCDF4",
    "pymc3": "pymc3",
    "jupyter": "jupyter",
    "ruamel_yaml": "ruamel.yaml",
    "typing_extensions": "typing-extensions",
    "importlib_metadata": "importlib-metadata",
    "beautifulsoup4": "beautifulsoup4",
    "pywavelets": "PyWavelets",
    "pyyaml": "PyYAML",
    "pyarrow": "pyarrow",
    "arrow-cpp": "pyarrow",
    "xgboost": "xgboost",
    "py-xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "altair": "altair",
    "vega_datasets": "vega-datasets",
}
# In every image already (the tooling step installs them): nothing to install, nothing missing.
CONDA_PROVIDED = {
    "python", "pip", "setuptools", "wheel", "jupyterlab", "notebook", "jupyterhub", "jupyterhub-singleuser",
    "ipykernel", "nb_conda_kernels",
}  # fmt: skip
# Not Python packages: skipped with a warning that says what to do instead (the Debian package for
# apt.txt, where one exists). Names starting with "r-" (R packages) and "lib" are skipped the same way.
CONDA_NOT_PYTHON = {
    "nodejs": "nodejs",
    "r-base": "r-base (and an install.R)",
    "r": "r-base (and an install.R)",
    "julia": None,
    "gcc": None,
    "gxx": None,
    "gfortran": None,
    "compilers": None,
    "make": "make",
    "cmake": "cmake",
    "git": "git",
    "curl": "curl",
    "wget": "wget",
    "openssl": None,
    "ca-certificates": None,
    "mkl": None,
    "blas": None,
    "openblas": None,
    "cudatoolkit": None,
    "cudnn": None,
    "graphviz": "graphviz",
    "ffmpeg": "ffmpeg",
    "pandoc": "pandoc",
    "imagemagick": "imagemagick",
    "gdal": "gdal-bin (then GDAL on the package index needs libgdal-dev)",
    "proj": "proj-bin",
    "geos": "libgeos-dev",
    "hdf5": "libhdf5-dev",
    "texlive-core": "texlive",
    "poppler": "poppler-utils",
    "tesseract": "tesseract-ocr",
}
# Python packages whose names start with "lib" (conda's C libraries do: libgcc-ng, libgdal, …).
LIB_PYTHON = {"librosa", "libpysal", "libcst", "libsass", "libarchive-c", "libtmux", "libusb1", "libclang"}
CONDA_DEP = re.compile(r"^([A-Za-z0-9_.\-]+)\s*([=<>!~].*|[0-9*].*)?$")


@dataclass
class Conversion:
    """Requirements lines, an optional Python version request, log notes and warnings (what was left out)."""

    requirements: list[str] = field(default_factory=list)
    python_version: str | None = None
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

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
            result.warnings.append(f"skipped conda dependency {raw!r}: not understood")
            continue
        name, version = match.group(1).lower(), (match.group(2) or "").strip()
        if name == "python":
            if version:
                result.python_version = version.lstrip("=").rstrip(".*").rstrip("*")
            continue
        if name in CONDA_PROVIDED:
            result.notes.append(f"conda package {name!r} is in every image already")
            continue
        if name not in CONDA_TO_PYPI and (
            name in CONDA_NOT_PYTHON or name.startswith("r-") or (name.startswith("lib") and name not in LIB_PYTHON)
        ):
            debian = CONDA_NOT_PYTHON.get(name)
            instead = f"; if the repository needs it, add {debian} to apt.txt" if debian else ""
            result.warnings.append(f"skipped conda package {name!r}: it is not a Python package{instead}")
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
    """Pinned requirements from Pipfile.lock, else Pipfile's packages; dev packages too, as repo2docker.

    An entry without a version (a path, a git URL, an editable checkout) is
    skipped with a warning: installing it by its bare name from the package
    index would install whatever someone published under that name.
    """
    result = Conversion()
    if lock_text:
        lock = json.loads(lock_text)
        for section in ("default", "develop"):
            for name, info in sorted((lock.get(section) or {}).items()):
                version = info.get("version", "") if isinstance(info, dict) else ""
                if version:
                    result.requirements.append(f"{name}{version}")
                else:
                    result.warnings.append(f"skipped Pipfile.lock entry {name!r}: it has no version on the index")
        result.notes.append(f"installing {len(result.requirements)} pinned packages from Pipfile.lock")
        python = (lock.get("_meta", {}).get("requires") or {}).get("python_version")
        result.python_version = python
        return result
    pipfile = tomllib.loads(pipfile_text or "")
    for section in ("packages", "dev-packages"):
        for name, version in (pipfile.get(section) or {}).items():
            if isinstance(version, str):
                result.requirements.append(name if version == "*" else f"{name}{version}")
            elif isinstance(version, dict) and "version" in version:
                result.requirements.append(f"{name}{version['version']}")
            else:
                result.warnings.append(f"skipped Pipfile entry {name!r}: only version requirements are supported")
    result.python_version = (pipfile.get("requires") or {}).get("python_version")
    result.notes.append(f"installing {len(result.requirements)} packages from Pipfile (no Pipfile.lock)")
    return result
