"""JSON Merge Patch (RFC 7396): how ``renew`` and ``reissue`` change stored claims.

Pure: plain JSON values in, a new value out; neither argument is changed.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["merge_patch"]


def merge_patch(target: Any, patch: Any) -> Any:
    """``target`` with ``patch`` applied, as RFC 7396 section 2 defines it.

    An object patch merges member by member (``null`` removes a member; a member that is
    itself an object merges recursively); any other patch replaces the target whole.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: dict[str, Any] = (
        {k: copy.deepcopy(v) for k, v in target.items()} if isinstance(target, dict) else {})
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result
