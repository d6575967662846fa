"""``--every 10m``, ``--warn-before 6h``: durations as people type them."""

from __future__ import annotations

import re
import unicodedata
from datetime import timedelta
from typing import Any

import click

from ecert_cli._render import fmt

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_PATTERN = re.compile(r"(\d{1,7})([smhd]?)", re.ASCII)


def parse_duration(text: str) -> timedelta:
    """``90``, ``90s``, ``10m``, ``6h``, ``2d`` or a sum such as ``1h30m``; ValueError if not.

    Full-width digits and letters (a Chinese keyboard's ``１０ｍ``) read as ASCII.
    """
    value = unicodedata.normalize("NFKC", text).strip().lower()
    if not value:
        raise ValueError(text)
    seconds, at = 0, 0
    for match in _PATTERN.finditer(value):
        if match.start() != at:
            raise ValueError(text)
        seconds += int(match.group(1)) * _UNITS[match.group(2) or "s"]
        at = match.end()
    if at != len(value):
        raise ValueError(text)
    return timedelta(seconds=seconds)


class Duration(click.ParamType[timedelta, Any]):
    """A click parameter holding a :class:`~datetime.timedelta` of at least ``minimum``."""

    name = "duration"

    def __init__(self, minimum: timedelta = timedelta(seconds=1)) -> None:
        self.minimum = minimum

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> timedelta:
        if isinstance(value, timedelta):
            return value
        try:
            parsed = parse_duration(str(value))
        except ValueError:
            self.fail(fmt("{value} is not a duration such as 30s, 10m, 6h or 1d",
                          value=repr(value)), param, ctx)
        if parsed < self.minimum:
            self.fail(fmt("{value} is shorter than {minimum} s", value=repr(value),
                          minimum=int(self.minimum.total_seconds())), param, ctx)
        return parsed
