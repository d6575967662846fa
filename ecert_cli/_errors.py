"""The library's errors in the reader's language.

The library's messages stay English (they are logged, and programs read the ``code``).
In Chinese the CLI puts a translated summary of the error's stable code first and keeps
the library's detail (names, ids, values) after it; an error the CLI wrote itself
(marked by :func:`ecert_cli._app.localized`) is already translated and shown as is.
A code missing from the table falls back to the summary of its class's code.
"""

from __future__ import annotations

import ecert
from ecert_cli._i18n import N_, _, is_chinese

SUMMARIES: dict[str, str] = {
    "error": N_("error"),
    "input_error": N_("invalid input"),
    "invalid_argument": N_("invalid argument"),
    "invalid_certificate_id": N_("invalid certificate id"),
    "claims_invalid": N_("the claims do not satisfy the type's schema"),
    "bad_claims": N_("invalid claims"),
    "not_found": N_("not found"),
    "already_exists": N_("already exists"),
    "not_authorized": N_("the agency may not issue this type"),
    "invalid_transition": N_("this change of status is not possible"),
    "access_denied": N_("access denied"),
    "not_authenticated": N_("operator not authenticated"),
    "permission_denied": N_("permission denied"),
    "pending_approval": N_("waiting for approval"),
    "keystore_error": N_("key store error"),
    "missing_passphrase": N_("passphrase missing"),
    "storage_error": N_("database error"),
    "not_initialized": N_("no registry here"),
    "conflict": N_("another change got there first; try again"),
    "replay": N_("this request was seen before"),
    "format_error": N_("malformed document"),
    "malformed": N_("malformed document"),
    "record_tampered": N_("a stored record has been tampered with"),
    "trust_list_invalid": N_("the trust list cannot be accepted"),
    "trust_list_bad_signature": N_("the trust list's signature is wrong"),
    "trust_list_expired": N_("the trust list has expired"),
    "trust_list_malformed": N_("the trust list is malformed"),
    "trust_list_rollback": N_("the trust list is older than one already seen"),
    "trust_list_unavailable": N_("the trust list cannot be fetched"),
    "trust_list_wrong_region": N_("the trust list is of another region"),
    "trust_state_corrupt": N_("the verifier's trust state is corrupt"),
    "trust_state_unwritable": N_("the verifier's trust state cannot be written"),
    "trust_state_wrong_anchor": N_("the verifier's trust state belongs to another anchor"),
    "anchor_malformed": N_("the anchor file is malformed"),
    "anchor_unreadable": N_("the anchor file cannot be read"),
    "publish_failed": N_("publishing failed"),
    "verification_failed": N_("the certificate is not valid"),
    "ambiguous_key": N_("ambiguous key"),
    "ambiguous_serial": N_("the serial matches several certificates"),
    "bad_tile": N_("a log tile is wrong"),
    "cjk_font_missing": N_("no font for Chinese characters"),
    "embedded_key": N_("a key embedded in the document is refused"),
    "foreign_uri": N_("an address of another region"),
    "invalid_action": N_("unknown action"),
    "invalid_agreement": N_("invalid agreement"),
    "invalid_card": N_("the card cannot be made"),
    "invalid_code": N_("invalid code"),
    "invalid_ec": N_("invalid error correction level"),
    "invalid_image": N_("the image cannot be read"),
    "invalid_qr_text": N_("not the text of an ecert QR code"),
    "invalid_key": N_("invalid key"),
    "invalid_name": N_("invalid name"),
    "invalid_national_type_code": N_("invalid national type code"),
    "invalid_output": N_("invalid output file"),
    "output_in_use": N_("the output directory holds something else"),
    "invalid_policy": N_("invalid policy"),
    "invalid_reason": N_("invalid reason"),
    "invalid_role": N_("unknown role"),
    "invalid_scale": N_("invalid scale"),
    "invalid_schema": N_("invalid JSON Schema"),
    "invalid_signature": N_("invalid signature"),
    "invalid_url": N_("invalid URL"),
    "invalid_uscc": N_("invalid unified social credit code"),
    "invalid_tz": N_("unknown time zone"),
    "key_exists": N_("the key exists already"),
    "log_gap": N_("the log has a gap"),
    "log_unreachable": N_("the log cannot be reached"),
    "malformed_proof": N_("malformed proof"),
    "missing_reason": N_("a reason is needed"),
    "monitor_error": N_("the monitor failed"),
    "monitor_state": N_("the monitor's state is unusable"),
    "no_log": N_("no log"),
    "no_qr_code": N_("no QR code found"),
    "qr_malformed": N_("malformed QR code"),
    "qr_too_large": N_("too much for a QR code"),
    "qr_unencodable": N_("cannot be put in a QR code"),
    "qr_unknown_version": N_("unknown QR format version"),
    "redirect_refused": N_("redirect refused"),
    "too_large": N_("too large"),
    "unproven_key": N_("the key is not proven"),
    "status_list_tampered": N_("a status list in the database differs from the log"),
    "unsafe_path": N_("unsafe path"),
    "unsupported_alg": N_("unsupported algorithm"),
    "digest_mismatch": N_("the content digest does not match the body"),
    "signature_invalid": N_("the request signature is not valid"),
    "signature_missing": N_("the request is not signed"),
    "request_stale": N_("the request is not fresh"),
    "unsupported_crit": N_("unsupported critical header"),
    "unsupported_key": N_("unsupported key"),
    "unverified": N_("not verified"),
    "witness_bad_checkpoint": N_("the witnessed checkpoint is wrong"),
    "witness_inconsistent": N_("the log is inconsistent with what was cosigned"),
    "witness_refused": N_("cosigning refused"),
    "witness_self": N_("a region cannot witness itself"),
    "witness_smaller": N_("the log is smaller than what was cosigned"),
    "witness_state": N_("the witness state is unusable"),
    "wrong_typ": N_("wrong document type"),
    "certificate_not_valid": N_("the certificate is not valid now: no QR code or card is made"),
    "copy_not_valid": N_("the copy does not verify: no card is made"),
    "invalid_catalog": N_("invalid catalog file"),
    "invalid_change": N_("this change is not possible"),
    "invalid_cursor": N_("invalid page cursor"),
    "invalid_date": N_("invalid date"),
    "invalid_dpi": N_("invalid resolution (dpi)"),
    "invalid_interval": N_("invalid interval"),
    "invalid_size": N_("invalid card size"),
    "invalid_version": N_("invalid type version"),
    "lease_held": N_("another watcher is publishing this registry"),
    "missing_change": N_("nothing to change"),
    "national_code_mismatch": N_("the national type codes differ"),
    "national_type_code_fixed": N_("a type's national type code cannot change"),
    "os_error": N_("file or system error"),
    "type_not_authorized_at_iat": N_("the agency could not issue this type when it was issued"),
    "unchanged": N_("nothing changes: it is so already"),
    "unknown_type": N_("their trust list has no such type"),
    "unreadable": N_("the file cannot be read"),
    "claims_too_deep": N_("claims nest too deeply"),
    "holder_id_birth_date": N_("the resident id's birth date is not a real date"),
    "holder_id_characters": N_("the holder id contains characters its scheme does not allow"),
    "holder_id_check": N_(
        "the holder id's check character does not match: a character is mistyped"),
    "holder_id_empty": N_("no holder id"),
    "holder_id_length": N_("the holder id has the wrong length"),
    "holder_id_mismatch": N_("the holder id differs from the one in the claims"),
    "holder_id_pattern": N_("the holder id does not match the type's pattern"),
    "holder_id_region": N_("the holder id's region code is not valid"),
    "holder_name_mismatch": N_("the holder name differs from the one in the claims"),
    "invalid_encoding": N_("the file is not in the expected text encoding"),
    "approval_required": N_("a four-eyes policy applies: a batch is not held for approval"),
    "batch_header": N_("the batch file's header lacks a column"),
    "batch_encoding": N_("the batch file's text encoding is not readable"),
    "batch_format": N_("the batch file is neither CSV nor JSON Lines"),
    "batch_rejects": N_("the rejects file cannot be used"),
    "invalid_validity": N_("invalid validity dates"),
    "invalid_holder_claims": N_("invalid holder claims"),
    "invalid_holder_id_scheme": N_("unknown holder id scheme"),
    "invalid_text": N_("text that cannot be accepted"),
    "qr_short_form_too_large": N_("the certificate's short QR form would be too large to print"),
    "text_empty": N_("empty text"),
    "text_invalid": N_("text with characters that are not allowed"),
    "text_too_long": N_("text too long"),
    "text_control": N_("text with control characters"),
    "text_bidi": N_("text with bidirectional override characters"),
    "text_format": N_("text with invisible format characters"),
    "text_noncharacter": N_("text with non-characters"),
    "unknown_encoding": N_("unknown text encoding"),
    "holder_id_invalid": N_("invalid holder id"),
    "unwritable": N_("the file cannot be written"),
    "no_requester_key": N_("the agency has no requester key"),
    "no_active_key": N_("there is no active key of that kind"),
    "invalid_requester": N_("invalid requester: use REGION or REGION/agency-code"),
    "invalid_entitlement": N_("invalid entitlement"),
    "not_in_force": N_("the entitlement has ended already"),
    "invalid_ttl": N_("invalid lifetime of a consent code"),
    "consent_not_open": N_("the consent code is used, revoked or expired already"),
    "invalid_request": N_("invalid sharing request"),
    "invalid_limit": N_("invalid sharing rate limit"),
    "too_many_requests": N_("too many requests this hour: try again later"),
    "no_sharing_key": N_("the registry has no sharing key"),
    "extra_missing": N_("an optional part of ecert is not installed"),
    # Verification results (ecert.ErrorCode): why a token did not verify.
    "unknown_kid": N_("signed with a key the trust list does not have"),
    "alg_key_mismatch": N_("the algorithm does not match the key"),
    "bad_signature": N_("the signature does not verify: altered or forged"),
    "issuer_mismatch": N_("the issuer does not match the key's agency"),
    "region_mismatch": N_("the region does not match the trust list"),
    "type_not_authorized": N_("the agency may not issue this type"),
    "bad_certificate_id": N_("malformed certificate id"),
    "key_not_valid_at_iat": N_("the key was not valid when it was signed"),
    "key_compromised": N_("signed with a compromised key"),
    "issued_in_future": N_("issued in the future"),
    "expired": N_("expired"),
    "not_yet_valid": N_("not yet valid"),
    "region_not_recognized": N_("a region the home region does not recognize"),
    "agreement_not_in_force": N_("the recognition agreement is not in force"),
    "type_not_recognized": N_("a type the recognition agreement does not cover"),
    "foreign_trust_list_invalid": N_("the other region's trust list cannot be used"),
    "status_list_unavailable": N_("the status list cannot be fetched"),
    "status_list_invalid": N_("the status list is invalid"),
    "status_list_expired": N_("the status list has expired"),
    "status_index_out_of_range": N_("the status index is outside the status list"),
    "status_unknown_value": N_("unknown status value"),
    "revoked": N_("revoked"),
    "suspended": N_("suspended"),
    "audience_required": N_("a copy is verified only for its requester: give --audience"),
    "wrong_audience": N_("the copy was made for another requester"),
    "wrong_purpose": N_("the copy was made for another purpose"),
    "copy_expired": N_("the copy has expired: fetch a new one"),
}


def localized(error: ecert.EcertError, english: str | None = None) -> ecert.EcertError:
    """Mark an error whose message the CLI wrote (and translated) itself: it is printed
    as is, without the summary of its code that library messages get in Chinese;
    ``english`` is the same message in English, for the JSON error."""
    error.localized = True  # type: ignore[attr-defined]
    if english is not None:
        error.english = english  # type: ignore[attr-defined]
    return error


def summary(error: ecert.EcertError) -> str:
    """The (English) summary of ``error``'s code, or of the nearest class's."""
    if error.code in SUMMARIES:
        return SUMMARIES[error.code]
    for cls in type(error).__mro__:
        code = getattr(cls, "code", None)
        if isinstance(code, str) and code in SUMMARIES:
            return SUMMARIES[code]
    return SUMMARIES["error"]


def english_text(error: ecert.EcertError, *, first_line: bool = True) -> str:
    """The line of ``error`` in English, for the JSON error (same in every language)."""
    english = getattr(error, "english", None)
    if isinstance(english, str):
        return english
    message = error.message or type(error).__name__
    if first_line:
        message = message.splitlines()[0] if message.strip() else type(error).__name__
    return message


def error_text(error: ecert.EcertError, *, first_line: bool = True) -> str:
    """The line to show for ``error``, in the current language."""
    message = error.message or type(error).__name__
    if first_line:
        message = message.splitlines()[0] if message.strip() else type(error).__name__
    if getattr(error, "localized", False) or not is_chinese():
        return message
    return _("{summary}: {detail}").format(summary=_(summary(error)), detail=message)
