"""Header elements seen before: decoded, checked and written as DICOM JSON once.

The slices of a series repeat most of their header (patient, study, series, equipment,
acquisition): of a generated CT slice's 68 elements, 55 are the same bytes in every slice.
Decoding a short element (its character set applied), the checks on it and its DICOM JSON
depend only on its tag, VR and bytes, the byte order and the data set's Specific
Character Set, so validation (:func:`imaging.dicom.validate.validate_instance`) looks
each such element up here: an element met before is neither decoded nor checked again,
and its JSON is reused; a new one is decoded and checked as always and remembered only
once it passed.

Only elements with an explicit VR from :data:`VRS` (text and numbers: never sequences,
binary or UN values, never a VR pydicom resolves from the rest of the data set) and at
most :data:`MAX_VALUE_BYTES` long are remembered, in a bounded least-recently-used table
held in this process's memory only.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from pydicom.dataelem import RawDataElement

VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI"}
    | {"UR", "UT", "FL", "FD", "SL", "SS", "UL", "US"}
)
MAX_VALUE_BYTES = 256
MAX_ENTRIES = 4096

Key = tuple[int, str, bytes, bool, bytes]
Fragment = dict[str, Any]  # one element's DICOM JSON; shared, never to be changed

_lock = threading.Lock()
_known: OrderedDict[Key, Fragment] = OrderedDict()


def key_of(elem: object, charset: bytes) -> Key | None:
    """The memo key of a raw element, or ``None`` if it is not one to remember."""
    if not isinstance(elem, RawDataElement) or elem.VR not in VRS:
        return None
    value = elem.value
    if value is None or len(value) > MAX_VALUE_BYTES:
        return None
    return (int(elem.tag), str(elem.VR), bytes(value), bool(elem.is_little_endian), charset)


def recall(key: Key) -> Fragment | None:
    with _lock:
        fragment = _known.get(key)
        if fragment is not None:
            _known.move_to_end(key)
        return fragment


def remember(key: Key, fragment: Fragment) -> None:
    with _lock:
        _known[key] = fragment
        _known.move_to_end(key)
        while len(_known) > MAX_ENTRIES:
            _known.popitem(last=False)


def forget() -> None:
    """Empty the table (tests)."""
    with _lock:
        _known.clear()
