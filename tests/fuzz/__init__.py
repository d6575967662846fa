"""Fuzz harnesses for every ecert decoder (see docs/fuzzing.md).

Deliberately empty: ``python -m tests.fuzz.run`` must be able to import this package
before atheris instruments ``ecert``, so nothing here may import ecert.
"""
