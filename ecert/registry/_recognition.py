"""Recognition agreements with other regions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ecert._authority import Action, Resource
from ecert._formats.trustlist import Agreement
from ecert.errors import InputError, NotFound
from ecert.registry._core import Operation, Target, Unit, register


def _target(_repo: Any, p: Mapping[str, Any]) -> Target:
    return Target(Resource(), p["region"])


def national_code_mismatches(types: Mapping[str, str], theirs: Mapping[str, str],
                             ours: Mapping[str, str]) -> list[dict[str, str]]:
    """The mapped pairs whose national type codes differ.

    ``types`` maps their type codes to ours; ``theirs`` and ``ours`` give each side's
    national type code by type code (from their verified trust list and our catalog).
    Pairs whose code is unknown on either side are not judged here.
    """
    return [{"theirs": t, "their_national_code": theirs[t], "ours": o,
             "our_national_code": ours[o]}
            for t, o in sorted(types.items())
            if t in theirs and o in ours and theirs[t] != ours[o]]


def _recognize(unit: Unit, p: Mapping[str, Any]) -> Agreement:
    value = Agreement.from_json(p["agreement"])
    repo = unit.repo
    catalog = {t.code: t.national_type_code for t in repo.list_types()}
    unknown = sorted(set(value.types.values()) - set(catalog))
    if unknown:
        raise NotFound(f"our catalog has no type {', '.join(unknown)}")
    details: dict[str, Any] = {"agreement": value.to_json()}
    their_types = p.get("their_types")
    if their_types is not None:
        differ = national_code_mismatches(value.types, their_types, catalog)
        if differ and not p.get("force"):
            raise InputError(
                "national type codes differ: " + "; ".join(
                    f"{value.region}'s {d['theirs']} is {d['their_national_code']}, our "
                    f"{d['ours']} is {d['our_national_code']}" for d in differ)
                + " (not the same licence? map it anyway with --force)",
                code="national_code_mismatch")
        if differ:  # recognized knowingly: the log says who overrode the check
            details["national_codes_differ"] = differ
    previous = repo.get_agreement(value.region)
    repo.put_agreement(value, unit.now)
    unit.log(Action.AGREEMENT_UPDATE if previous else Action.AGREEMENT_ADD, value.region,
             details)
    return value


RECOGNIZE = register(Operation(Action.AGREEMENT_ADD, _target, _recognize))


def _withdraw(unit: Unit, p: Mapping[str, Any]) -> None:
    region = p["region"]
    if not unit.repo.withdraw_agreement(region, unit.now):
        raise NotFound(f"no agreement with region {region}")
    unit.log(Action.AGREEMENT_WITHDRAW, region, {})


WITHDRAW = register(Operation(Action.AGREEMENT_WITHDRAW, _target, _withdraw))
