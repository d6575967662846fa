"""Recognition agreements with other regions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ecert._authority import Action, Resource
from ecert._formats.trustlist import Agreement
from ecert.errors import NotFound
from ecert.registry._core import Operation, Target, Unit, register


def _target(_repo: Any, p: Mapping[str, Any]) -> Target:
    return Target(Resource(), p["region"])


def _recognize(unit: Unit, p: Mapping[str, Any]) -> Agreement:
    value = Agreement.from_json(p["agreement"])
    repo = unit.repo
    known = {t.code for t in repo.list_types()}
    unknown = sorted(set(value.types.values()) - known)
    if unknown:
        raise NotFound(f"our catalog has no type {', '.join(unknown)}")
    previous = repo.get_agreement(value.region)
    repo.put_agreement(value, unit.now)
    unit.log(Action.AGREEMENT_UPDATE if previous else Action.AGREEMENT_ADD, value.region,
             {"agreement": value.to_json()})
    return value


RECOGNIZE = register(Operation(Action.AGREEMENT_ADD, _target, _recognize))


def _withdraw(unit: Unit, p: Mapping[str, Any]) -> None:
    region = p["region"]
    if not unit.repo.withdraw_agreement(region, unit.now):
        raise NotFound(f"no agreement with region {region}")
    unit.log(Action.AGREEMENT_WITHDRAW, region, {})


WITHDRAW = register(Operation(Action.AGREEMENT_WITHDRAW, _target, _withdraw))
