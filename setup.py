"""The optional C accelerator (core/_native.c): everything else is in pyproject.toml.

`optional=True`: where it does not compile, the install goes on and the server runs on the
pure-Python codec (core/native.py)."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("core._native", ["core/_native.c"], optional=True)])
