"""Phone numbers: E.164 normalisation and the key that matches one WhatsApp user across formats.

Brazilian mobile numbers gained a ninth digit (a leading 9 after the two-digit area code), but
WhatsApp ids of older accounts still come without it: `556199999999` and `+5561999999999` are
the same person. `match_key` maps both to one value so lookups never create a duplicate.
"""

from __future__ import annotations

import re

import phonenumbers

_NON_DIGITS = re.compile(r"\D")


class InvalidPhoneNumber(ValueError):
    pass


def digits(raw: str) -> str:
    return _NON_DIGITS.sub("", raw)


def normalise_e164(raw: str) -> str:
    """`+<country><number>` for a valid number given with its country code; else InvalidPhoneNumber."""
    text = raw.strip()
    if not text:
        raise InvalidPhoneNumber("Phone number must be in E.164 format")
    candidate = text if text.startswith("+") else "+" + digits(text)
    try:
        parsed = phonenumbers.parse(candidate, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber("Phone number must be in E.164 format") from exc
    if not phonenumbers.is_valid_number(parsed):
        # Brazilian WhatsApp ids without the ninth digit are not valid numbers as written.
        restored = _with_brazilian_ninth_digit(digits(candidate))
        if restored != digits(candidate):
            return normalise_e164("+" + restored)
        raise InvalidPhoneNumber("Phone number must be in E.164 format")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _with_brazilian_ninth_digit(number: str) -> str:
    # 55 + 2-digit area code + 8-digit mobile starting 6-9 → insert the 9.
    if len(number) == 12 and number.startswith("55") and number[4] in "6789":
        return number[:4] + "9" + number[4:]
    return number


def match_key(number: str) -> str:
    """Digits of the number with Brazil's ninth digit restored: equal keys are one WhatsApp user."""
    return _with_brazilian_ninth_digit(digits(number))


def from_wa_id(wa_id: str) -> str:
    """The E.164 form of a WhatsApp id (`16505551234` → `+16505551234`), ninth digit restored."""
    try:
        return normalise_e164("+" + digits(wa_id))
    except InvalidPhoneNumber:
        # WhatsApp is the authority on its own ids: keep an unparseable one rather than drop it.
        return "+" + match_key(wa_id)
