"""conda names in environment.yml become package-index requirements through a maintained table."""

import pytest

from binderlite.builds.buildpacks.specfiles import convert_environment_yml


def _convert(*deps: str):
    return convert_environment_yml("dependencies:\n" + "".join(f"  - {d}\n" for d in deps))


@pytest.mark.parametrize(
    "conda, requirement",
    [
        ("dask", "dask[complete]"),  # the metapackage brings distributed, pyarrow, …
        ("dask=2023.1", "dask[complete]==2023.1.*"),
        ("dask-core", "dask"),
        ("pytorch", "torch"),
        ("py-opencv", "opencv-python-headless"),
        ("matplotlib-base>=3.5", "matplotlib>=3.5"),
        ("pytables", "tables"),
        ("python-graphviz", "graphviz"),
        ("msgpack-python", "msgpack"),
        ("netcdf4", "netCDF4"),
        ("conda-forge::numpy=1.26", "numpy==1.26.*"),
        ("pandas", "pandas"),
    ],
)
def test_conda_names_map_to_the_package_index(conda, requirement):
    assert _convert(conda).requirements == [requirement]


@pytest.mark.parametrize("conda", ["python=3.10", "pip", "jupyterlab", "notebook", "ipykernel"])
def test_what_every_image_has_is_not_installed_again_and_is_no_warning(conda):
    result = _convert(conda)
    assert result.requirements == [] and result.warnings == []


@pytest.mark.parametrize(
    "conda, advice",
    [
        ("graphviz", "add graphviz to apt.txt"),
        ("nodejs", "add nodejs to apt.txt"),
        ("r-ggplot2", "not a Python package"),
        ("libgdal", "not a Python package"),
        ("ffmpeg", "add ffmpeg to apt.txt"),
        ("gcc", "not a Python package"),
    ],
)
def test_non_python_packages_are_skipped_with_a_warning_that_says_what_to_do(conda, advice):
    result = _convert(conda)
    assert result.requirements == []
    assert len(result.warnings) == 1 and advice in result.warnings[0]


def test_pip_section_is_kept_as_is():
    text = "dependencies:\n  - numpy\n  - pip:\n    - six==1.16.0\n    - git+https://example.org/x.git\n"
    assert convert_environment_yml(text).requirements == ["numpy", "six==1.16.0", "git+https://example.org/x.git"]
