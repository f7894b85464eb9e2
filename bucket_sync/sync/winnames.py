"""Names Windows cannot hold, mapped reversibly to look-alikes, and the long-path form of a Windows path.

A blob name may hold what no Windows file name can: ``< > : " | ? *``, control characters, a trailing dot
or space, or a reserved device name (``CON``, ``NUL.txt``...). Written as is, ``a:b`` becomes the
alternate data stream ``b`` of a file ``a``, ``x.`` silently loses its dot, and ``NUL.txt`` writes to
the null device. So, as rclone's Windows encoding does, each one is written as a look-alike on download
and read back on upload (one segment at a time; ``/`` never appears in a segment):

==========================================  ==============================================================
in the blob name                            in the local file name
==========================================  ==============================================================
``<`` ``>`` ``:`` ``"`` ``|`` ``?`` ``*``   ``＜`` ``＞`` ``：`` ``＂`` ``｜`` ``？`` ``＊`` (U+FF1C ... FULLWIDTH)
control characters U+0001..U+001F           ``␁`` .. ``␟`` (U+2401..U+241F, SYMBOL FOR ...)
a trailing ``.`` / a trailing space         ``．`` (U+FF0E) / ``␠`` (U+2420)
CON PRN AUX NUL COM0-9 COM¹²³ LPT0-9 LPT¹²³  the first letter full-width: ``CON.txt`` -> ``ＣON.txt``,
(any case, with any extension)              ``nul`` -> ``ｎul`` (rclone has no rule for these)
==========================================  ==============================================================

A look-alike that the blob name itself holds, where it would be read back as the character it stands for,
is quoted with ``‛`` (U+201B, rclone's quote): ``a：b`` is written ``a‛：b``, ``ＣON`` ``‛ＣON``. Unlike
rclone, a ``‛`` already in the name is doubled only where it stands right before such a place (``‛:`` ->
``‛‛：``), so that *every* name Windows can hold reads back as exactly one blob name and is written again
exactly as it was: upload -> download -> upload changes nothing, and no two local files can claim one blob
name. (rclone doubles every ``‛``; the two agree on every name without one.)

NUL, ``/`` and ``\\`` have no entry: a blob name holding them is refused before anything is written
(keys.check_key), so nothing needs to stand for them.
"""

from __future__ import annotations

import ntpath

QUOTE = "\u201b"  # ‛ SINGLE HIGH-REVERSED-9 QUOTATION MARK, as in rclone
_FULL_OFFSET = 0xFEE0  # ASCII '!'..'~' + this = its FULLWIDTH form

# Anywhere in a name: the character -> its look-alike.
_ANYWHERE = {c: chr(ord(c) + _FULL_OFFSET) for c in '<>:"|?*'}
_ANYWHERE.update({chr(c): chr(0x2400 + c) for c in range(0x01, 0x20)})
_ANYWHERE_BACK = {v: k for k, v in _ANYWHERE.items()}
# Only as a name's last character (Windows drops a trailing dot or space).
_TRAILING = {".": "\uff0e", " ": "\u2420"}
_TRAILING_BACK = {v: k for k, v in _TRAILING.items()}

RESERVED_NAMES = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"{port}{n}" for port in ("COM", "LPT") for n in (*"0123456789", "\u00b9", "\u00b2", "\u00b3")]
)


def is_reserved(name: str) -> bool:
    """Whether Windows takes ``name`` for a device: the part before the first dot, trailing spaces
    dropped, is one of RESERVED_NAMES whatever its case (``nul``, ``Com1.txt``, ``CON .tar.gz``)."""
    return name.split(".", 1)[0].rstrip(" ").upper() in RESERVED_NAMES


def _is_ascii_letter(c: str) -> bool:
    return "a" <= c <= "z" or "A" <= c <= "Z"


def _is_fullwidth_letter(c: str) -> bool:
    return "\uff21" <= c <= "\uff3a" or "\uff41" <= c <= "\uff5a"


def encode_name(name: str) -> str:
    """The local file name for one segment of a blob name (see the table above)."""
    if _is_ascii_letter(name[0]) and is_reserved(name):
        return chr(ord(name[0]) + _FULL_OFFSET) + _encode_from(name, 1)
    # A full-width letter that, read back, would make a device name (after any run of quotes): one quote
    # more. Not doubled as below: a name starting with a quote is never a device, so every run length
    # stands for exactly one name.
    lead = len(name) - len(name.lstrip(QUOTE))
    if lead < len(name) and _is_fullwidth_letter(name[lead]) \
            and is_reserved(chr(ord(name[lead]) - _FULL_OFFSET) + name[lead + 1:]):
        return QUOTE * (lead + 1) + name[lead] + _encode_from(name, lead + 1)
    return _encode_from(name, 0)


def _encode_from(name: str, start: int) -> str:
    out: list[str] = []
    i, n = start, len(name)
    while i < n:
        j = i
        while j < n and name[j] == QUOTE:
            j += 1
        quotes = j - i
        if j == n:
            out.append(QUOTE * quotes)
            break
        c = name[j]
        last = j == n - 1
        stand_in = _ANYWHERE.get(c) or (_TRAILING.get(c) if last else None)
        if stand_in is not None:  # the character itself: its look-alike, the quotes before it doubled
            out.append(QUOTE * (2 * quotes) + stand_in)
        elif c in _ANYWHERE_BACK or (last and c in _TRAILING_BACK):  # a look-alike as such: quoted
            out.append(QUOTE * (2 * quotes + 1) + c)
        else:
            out.append(QUOTE * quotes + c)
        i = j + 1
    return "".join(out)


def decode_name(local: str) -> str:
    """The blob name segment a local file name stands for: the inverse of :func:`encode_name`."""
    lead = len(local) - len(local.lstrip(QUOTE))
    if lead < len(local) and _is_fullwidth_letter(local[lead]):
        rest = _decode_from(local, lead + 1)
        plain = chr(ord(local[lead]) - _FULL_OFFSET)
        if is_reserved(plain + rest):
            return (plain if lead == 0 else QUOTE * (lead - 1) + local[lead]) + rest
    return _decode_from(local, 0)


def _decode_from(local: str, start: int) -> str:
    out: list[str] = []
    i, n = start, len(local)
    while i < n:
        j = i
        while j < n and local[j] == QUOTE:
            j += 1
        quotes = j - i
        if j == n:
            out.append(QUOTE * quotes)
            break
        c = local[j]
        meant = _ANYWHERE_BACK.get(c) or (_TRAILING_BACK.get(c) if j == n - 1 else None)
        if meant is None:
            out.append(QUOTE * quotes + c)
        else:  # an even run of quotes: the look-alike stands for ``meant``; an odd one quotes it
            out.append(QUOTE * (quotes // 2) + (meant if quotes % 2 == 0 else c))
        i = j + 1
    return "".join(out)


def windows_problem(name: str) -> str | None:
    """Why Windows cannot hold ``name`` as a file name, or None (the property tests' oracle)."""
    if not name:
        return "an empty name"
    bad = sorted({c for c in name if c in _ANYWHERE or c in "\x00/\\"})
    if bad:
        return f"holds {', '.join(repr(c) for c in bad)}"
    if name[-1] in ". ":
        return "ends with a dot or a space"
    if is_reserved(name):
        return "is a reserved device name"
    return None


# -- long paths ------------------------------------------------------------------------------------------
# Without the \\?\ form, the Windows file API refuses paths of MAX_PATH (260) characters or more (folders
# from 248: room for an 8.3 name), unless LongPathsEnabled is set machine-wide, which it is not by default.
WINDOWS_LONG_PATH_FROM = 240  # below the folder limit, with room for ".bucket-sync-partial"
_EXTENDED = "\\\\?\\"


def extended_path(path: str) -> str:
    """``path`` (absolute, Windows) in the ``\\\\?\\`` form that lifts the 260-character limit: ``C:\\x`` ->
    ``\\\\?\\C:\\x``, ``\\\\server\\share\\x`` -> ``\\\\?\\UNC\\server\\share\\x``. That form turns off
    Windows' own path normalisation, so it is normalised here first (``/`` to ``\\``, no ``..``). Pure:
    ntpath rules on every platform, so it is tested everywhere."""
    if path.startswith(_EXTENDED) or path.startswith("\\\\.\\"):
        return path
    path = ntpath.normpath(path)
    if path.startswith("\\\\"):
        return _EXTENDED + "UNC\\" + path[2:]
    return _EXTENDED + path


def plain_path(path: str) -> str:
    """The inverse of :func:`extended_path` (for comparing paths given in either form)."""
    if path.startswith(_EXTENDED + "UNC\\"):
        return "\\\\" + path[len(_EXTENDED) + 4:]
    if path.startswith(_EXTENDED):
        return path[len(_EXTENDED):]
    return path


def long_path_if_needed(path: str) -> str:
    """``path`` in the ``\\\\?\\`` form when it is long enough to need it (Windows), else as it is."""
    return extended_path(path) if len(path) >= WINDOWS_LONG_PATH_FROM else path
