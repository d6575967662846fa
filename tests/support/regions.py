"""The three sample regions of ``regions.json`` and their agreements."""

from __future__ import annotations

from typing import Any

from ecert import _samples

REGIONS = ("GD", "ZJ", "SH")
BL, FBL, DL, PQ, SPJY = ("cn.business-licence", "cn.food-business-licence",
                         "cn.driving-licence", "cn.professional-qualification", "zj.spjyxkz")
#: Sample claims per type, and the claims naming the holder (id, name).
CLAIMS = {BL: "business-licence-gd", DL: "driving-licence-zj", FBL: "food-business-licence-sh",
          SPJY: "food-business-licence-sh", PQ: "professional-qualification-gd"}
HOLDER = {"business-licence-gd": ("uscc", "name"),
          "driving-licence-zj": ("licence_number", "name"),
          "food-business-licence-sh": ("uscc", "operator_name"),
          "professional-qualification-gd": ("id_number", "name")}


def recognitions() -> list[dict[str, Any]]:
    return list(_samples.regions()["recognitions"])


def mapping(verifier: str, issuer: str) -> dict[str, str] | None:
    """regions.json: the types ``verifier`` accepts from ``issuer`` (theirs -> ours)."""
    for entry in recognitions():
        if entry["verifier_region"] == verifier and entry["recognizes"] == issuer:
            return dict(entry["types"])
    return None
