"""The public surface of the ``ecert`` package."""

from __future__ import annotations

import inspect
import types

import pytest

import ecert


def public_names() -> set[str]:
    """Names importable from ``ecert`` that are public: no underscore, not a submodule.

    ``dir``, not ``vars``: the registry's names are imported on first use (PEP 562).
    """
    return {
        name for name in dir(ecert)
        if not name.startswith("_") and not isinstance(getattr(ecert, name), types.ModuleType)
    }


def test_all_lists_exactly_the_public_names() -> None:
    assert set(ecert.__all__) - {"__version__"} == public_names()


def test_all_is_sorted_and_unique() -> None:
    assert list(ecert.__all__) == sorted(ecert.__all__)
    assert len(set(ecert.__all__)) == len(ecert.__all__)


def test_every_name_in_all_is_importable() -> None:
    namespace: dict[str, object] = {}
    exec("from ecert import *", namespace)
    assert set(ecert.__all__) <= set(namespace)
    for name in ecert.__all__:
        assert getattr(ecert, name) is namespace[name]


def test_version() -> None:
    assert "__version__" in ecert.__all__
    assert isinstance(ecert.__version__, str)
    parts = ecert.__version__.split(".")
    assert len(parts) >= 2 and all(p.isdigit() for p in parts[:2])


def _own_docstring(value: object) -> str | None:
    doc = getattr(value, "__doc__", None)
    if inspect.isclass(value):
        doc = value.__dict__.get("__doc__")
        # dataclasses invent "Name(field, ...)" when a class has no docstring.
        if doc and doc.startswith(f"{value.__name__}("):
            return None
    return doc


@pytest.mark.parametrize("name", sorted(n for n in ecert.__all__ if n != "__version__"))
def test_every_public_name_has_a_docstring(name: str) -> None:
    doc = _own_docstring(getattr(ecert, name))
    assert doc and doc.strip(), f"ecert.{name} has no docstring"


def test_public_names_come_from_ecert() -> None:
    for name in public_names():
        module = getattr(getattr(ecert, name), "__module__", "")
        assert module == "ecert" or module.startswith("ecert."), (name, module)


def test_package_docstring() -> None:
    assert ecert.__doc__ and "Verifier" in ecert.__doc__
