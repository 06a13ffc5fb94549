"""The normalised search column and how a search query is matched against it.

`search_text` holds the name, the e-mail and the phone digits lower-cased with accents
stripped, so one substring match (LIKE '%…%', a trigram index on PostgreSQL) finds a contact
by any of them regardless of case, accents or how the number was typed.
"""

from __future__ import annotations

import re
import unicodedata

from pytake.kit.phone import digits, match_key

_PHONE_QUERY = re.compile(r"^[\d\s+\-().]+$")
# Digit n-grams (PostgreSQL's `contact_digit_grams(search_text)`, migration 0007) index every run
# of at least this many digits; a phone query this long is looked up by its n-grams.
DIGIT_GRAM = 5
_SPACES = re.compile(r"\s+")


def fold(value: str) -> str:
    """Lower-case, accent-free, single-spaced text: 'João  SILVA' → 'joao silva'."""
    decomposed = unicodedata.normalize("NFKD", value)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _SPACES.sub(" ", stripped.casefold()).strip()


def phone_spellings(whatsapp_id: str) -> list[str]:
    """The digit strings a number is findable by: as stored, and without Brazil's ninth digit."""
    number = digits(whatsapp_id)
    spellings = [number]
    key = match_key(number)
    if key != number:
        spellings.append(key)
    # A Brazilian mobile stored with the ninth digit is also typed (and old ids sent) without it.
    if len(number) == 13 and number.startswith("55") and number[4] == "9" and number[5] in "6789":
        spellings.append(number[:4] + number[5:])
    return spellings


def contact_search_text(name: str | None, email: str | None, whatsapp_id: str | None) -> str:
    """The value of `contacts.search_text` for these fields."""
    parts = [fold(name or ""), fold(email or "")]
    if whatsapp_id:
        parts.extend(phone_spellings(whatsapp_id))
    return " ".join(p for p in parts if p)


def _needle(query: str) -> str:
    text = query.strip()
    return digits(text) if _PHONE_QUERY.match(text) and digits(text) else fold(text)


def digit_grams(query: str) -> list[int] | None:
    """The digit n-grams a phone-like query's matches must contain, or None (not phone-like,
    or too short to have one).

    Every LIKE '%<digits>%' match lies inside one run of digits of `search_text`, so it holds all
    n-grams of the query: a necessary condition that a GIN index answers from a few short posting
    lists, where digit trigrams (only 1,000 of them) each list a few per cent of all contacts.
    As integers: all have DIGIT_GRAM digits, so no leading zero is lost, and an int4[] GIN index
    is about half as costly to write as a text[] one (no collation-aware comparisons).
    """
    text = query.strip()
    if not (_PHONE_QUERY.match(text) and len(needle := digits(text)) >= DIGIT_GRAM):
        return None
    return sorted({int(needle[i : i + DIGIT_GRAM]) for i in range(len(needle) - DIGIT_GRAM + 1)})


def search_pattern(query: str) -> str | None:
    """The LIKE pattern for a search query, or None when there is nothing to search for.

    A query made only of digits and phone punctuation matches phone digits, so '+55 61 9999-9999',
    '556199999999' and '(61) 99999-9999' all find the same contact.
    """
    needle = _needle(query)
    if not needle:
        return None
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
