"""Every listing pages the same way: ``--limit``, ``--after CURSOR``, and under
``--json`` the object ``{"items": [...], "more": bool, "next": cursor-or-null}``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

import ecert
from ecert_cli._app import emit
from ecert_cli._render import say

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def page_options(default_limit: int = 100, maximum: int = 10_000) -> Callable[[F], F]:
    """``--limit N`` and ``--after CURSOR`` (the ``next`` of the previous page)."""
    def decorate(func: F) -> F:
        func = click.option("--after", default=None, metavar="CURSOR",
                            help="Continue after this cursor (printed with the previous "
                                 "page).")(func)
        return click.option("--limit", type=click.IntRange(1, maximum),
                            default=default_limit, show_default=True,
                            help="Show at most this many.")(func)
    return decorate


def emit_page(page: ecert.Page[T], item_json: Callable[[T], Any],
              lines: Callable[[], None]) -> None:
    """Print a page as JSON, or its human ``lines`` and, if more follow, how to see them."""
    def human() -> None:
        lines()
        if page.more:
            say("{count} shown, more: use --after {cursor}", count=len(page.items),
                cursor=page.next)

    emit(page.to_json(item_json), human)
