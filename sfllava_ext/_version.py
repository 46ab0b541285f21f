"""The package version: the one place it is written. ``sfllava_ext.__version__``,
the package metadata (pyproject.toml reads this file) and the CMake project
(CMakeLists.txt reads it too) all take it from here."""

__version__ = "0.1.0"
