"""Verifier policy: the certificate (or the copy) must be in its region's public log.

:func:`check_inclusion` (``ecert verify --require-inclusion``) checks, for a token the
:class:`ecert.Verifier` accepted, that

* the entry at the leaf index (from a proof — the JSON of ``ecert audit prove ID
  --json`` — or given directly) is a ``certificate.issue`` whose ``token`` is the hash
  of this token (and, when the proof carries the commitment's opening, that its subject
  commits to this certificate's id); for a purpose-bound copy, the granted
  ``share.fetch`` use entry (version 2) that served it: one of its ``copies`` is the
  hash of this copy and its time is the copy's ``iat`` — a copy minted with the
  sharing key but never served through the log has no such entry;
* the entry is included in a checkpoint signed by the log key of the region's verified
  trust list (the proof's own checkpoint is accepted when it is consistent with the one
  the region serves; otherwise the proof is computed from the published tiles);
* with a :class:`ecert.monitor.WitnessPolicy` of ``k``: at least ``k`` witnesses the
  verifier trusts itself (its home region and the regions its home recognizes, never the
  logged region) cosigned a checkpoint consistent with it that holds the entry.

The existing :class:`ecert.Verifier` API is unchanged; this is an explicit extra check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ecert._formats import merkle
from ecert._formats.jose import b64url_decode
from ecert._formats.log import Entry, opens, token_hash
from ecert._formats.note import NoteError
from ecert._replay import Finding
from ecert.errors import EcertError, FormatError
from ecert.monitor import (
    LogUnreachable,
    RegionLog,
    WitnessPolicy,
    WitnessTally,
    consistent_with,
    count_witnesses,
    judge_witnesses,
    log_verifier_key,
    trusted_witnesses,
)
from ecert.verify import VerificationResult, Verifier

__all__ = ["InclusionPolicy", "InclusionResult", "check_inclusion", "load_proof"]


@dataclass(frozen=True, slots=True)
class InclusionPolicy:
    """What :func:`check_inclusion` requires besides inclusion itself."""

    witnesses: WitnessPolicy = field(default_factory=WitnessPolicy)


@dataclass(frozen=True)
class InclusionResult:
    """Whether the token's issue is proven in its region's log; truthy when it is."""

    included: bool
    region: str | None = None
    leaf_index: int | None = None
    checkpoint_size: int | None = None
    #: Stable codes: ``no_proof``, ``log_unreachable``, ``checkpoint_invalid``,
    #: ``not_logged``, ``not_included``, ``witnesses_insufficient``, ``qr_form``.
    errors: tuple[str, ...] = ()
    messages: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    witnesses: WitnessTally | None = None

    def __bool__(self) -> bool:
        return self.included

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "included": self.included, "region": self.region, "leaf_index": self.leaf_index,
            "checkpoint_size": self.checkpoint_size, "errors": list(self.errors),
            "messages": list(self.messages), "warnings": list(self.warnings)}
        if self.witnesses is not None:
            value["witnesses"] = self.witnesses.to_json()
        return value


@dataclass(frozen=True, slots=True)
class _Proof:
    index: int
    leaf: bytes | None = None
    size: int | None = None
    root: bytes | None = None
    hashes: tuple[bytes, ...] = ()
    opening: bytes | None = None


#: The entry that proves a certificate's token, and the one that proves a copy's.
ISSUE_ACTION = "certificate.issue"
USE_ACTION = "share.fetch"


def load_proof(value: Mapping[str, Any], action: str = ISSUE_ACTION) -> _Proof:
    """Read the JSON of ``ecert audit prove ID --json`` (or ``{"index": N}``); its one
    entry of ``action`` (a copy's: ``share.fetch``, of ``ecert audit prove use:N``)."""
    try:
        if "index" in value and "entries" not in value:
            index = value["index"]
            if type(index) is not int or index < 0:
                raise ValueError("index is a leaf number")
            return _Proof(index)
        issued = [e for e in value["entries"] if e.get("action") == action]
        if len(issued) != 1:
            raise ValueError(f"the proof holds no single {action} entry")
        entry = issued[0]
        checkpoint = value.get("checkpoint") or {}
        hashes = entry.get("inclusion_proof")
        opening = value.get("opening")
        return _Proof(
            int(entry["seq"]), str(entry["leaf"]).encode("utf-8"),
            int(checkpoint["size"]) if hashes is not None else None,
            b64url_decode(checkpoint["root"]) if hashes is not None else None,
            tuple(b64url_decode(h) for h in hashes or ()),
            b64url_decode(opening) if isinstance(opening, str) else None)
    except (KeyError, TypeError, ValueError, AttributeError, FormatError) as e:
        raise FormatError(f"the inclusion proof is malformed: {e}", code="malformed_proof") \
            from e


def check_inclusion(verifier: Verifier, token: str, *,
                    proof: Mapping[str, Any] | None = None, leaf_index: int | None = None,
                    policy: InclusionPolicy | None = None,
                    result: VerificationResult | None = None,
                    audience: str | None = None) -> InclusionResult:
    """See the module docstring. Never raises on bad input; fetch failures give
    ``log_unreachable``. A copy verifies only for its ``audience`` (or give the
    ``result`` of ``verifier.verify(token, audience=…)``)."""
    policy = policy or InclusionPolicy()
    result = result if result is not None else verifier.verify(token, audience=audience)
    region = result.issuing_region

    def refuse(code: str, message: str, **facts: Any) -> InclusionResult:
        return InclusionResult(False, region, errors=(code,), messages=(message,), **facts)

    if region is None or (result.certificate is None and result.copy is None):
        return refuse("not_verified", "the token did not verify: nothing to look up")
    if result.qr:
        return refuse("qr_form", "inclusion is proven for the full token, not its QR form")
    action = ISSUE_ACTION if result.copy is None else USE_ACTION
    try:
        parsed = load_proof(proof, action) if proof is not None else (
            _Proof(leaf_index) if leaf_index is not None else None)
    except FormatError as e:
        return refuse("no_proof", e.message)
    if parsed is None:
        return refuse("no_proof", "give the proof of 'ecert audit prove ID --json' or the "
                                  "entry's leaf index (a copy's: the Ecert-Log-Index its "
                                  "service answered)")
    source = verifier.source
    now = verifier.now()
    try:
        home = verifier.trust_list
        trust = home if region == home.region else verifier.foreign_trust_list(region)
        info = trust.log
        if info is None:
            return refuse("not_logged", f"region {region} publishes no log")
        published = RegionLog(trust.base_url, source)
        try:
            checkpoint, _data = published.checkpoint(log_verifier_key(info.key), info.origin)
        except NoteError as e:
            return refuse("checkpoint_invalid", f"the checkpoint of {region} does not verify "
                          f"with its log key: {e.message}")
        size, root = checkpoint.size, checkpoint.root
        index = parsed.index
        facts: dict[str, Any] = {"leaf_index": index, "checkpoint_size": size}
        if index >= size:
            return refuse("not_included", f"entry {index} is not in the checkpoint of "
                          f"{size} entries yet", **facts)
        start = index - index % merkle.TILE_WIDTH
        width = min(merkle.TILE_WIDTH, size - start)
        leaf = parsed.leaf
        if leaf is None:
            leaf = published.entries(start // merkle.TILE_WIDTH, width)[index - start]
        try:
            entry = Entry.decode(leaf)
        except FormatError as e:
            return refuse("not_logged", f"entry {index} is malformed: {e.message}", **facts)
        why = _not_the_entry(entry, token.strip(), result, parsed.opening)
        if why is not None:
            return refuse("not_logged", f"entry {index} {why}", **facts)
        leaf_hash = merkle.leaf_hash(leaf)
        if parsed.size is not None and parsed.root is not None and merkle.verify_inclusion(
                leaf_hash, index, parsed.size, list(parsed.hashes), parsed.root) \
                and consistent_with(published, size, root, parsed.size, parsed.root):
            included = True
        else:
            hashes = merkle.tile_inclusion_proof(index, size, published)
            included = merkle.verify_inclusion(leaf_hash, index, size, hashes, root)
        if not included:
            return refuse("not_included", f"entry {index} is not included in the checkpoint "
                          f"of {size} entries signed by the log key of {region}", **facts)
        if not policy.witnesses.required:
            return InclusionResult(True, region, **facts)
        witnesses = trusted_witnesses(home, source=source, now=now,
                                      grace=verifier.limits.trust_list_grace_seconds,
                                      foreign=verifier.foreign_trust_list)
        tally = count_witnesses(logged=trust, witnesses=witnesses, source=source,
                                tree=published, size=size, root=root,
                                required=policy.witnesses.required)
        findings: list[Finding] = []
        warnings: list[str] = []
        judge_witnesses(tally, policy.witnesses,
                        lambda *a: findings.append(Finding(*a)), warnings,
                        f"no checkpoint of {region} holding entry {index}", index + 1)
        if findings:
            return refuse("witnesses_insufficient", findings[0].detail, witnesses=tally,
                          **facts)
        return InclusionResult(True, region, warnings=tuple(warnings), witnesses=tally,
                               **facts)
    except LogUnreachable as e:
        return refuse("log_unreachable", e.message)
    except (OSError, EcertError) as e:
        return refuse("log_unreachable" if isinstance(e, OSError) else "not_included",
                      getattr(e, "message", str(e)))



def _not_the_entry(entry: Entry, token: str, result: VerificationResult,
                   opening: bytes | None) -> str | None:
    """Why ``entry`` does not prove ``token`` (None: it does): a certificate's issue
    names the token's hash; a copy's use entry names it among the copies it served, at
    the copy's own time."""
    digest = token_hash(token)
    if result.copy is None:
        if entry.action != ISSUE_ACTION or entry.details.get("token") != digest:
            return "is not the issue of this token"
        if opening is not None and result.certificate is not None and not opens(
                entry.subject, opening, result.certificate.id):
            return "is about another certificate"
        return None
    d = entry.details
    copies = d.get("copies")
    if (entry.action != USE_ACTION or d.get("version") != 2 or d.get("outcome") != "granted"
            or not isinstance(copies, list) or digest not in copies):
        return "is not the use record that served this copy"
    if entry.time != int(result.copy.issued_at.timestamp()):
        return "was not made when this copy was"
    return None
