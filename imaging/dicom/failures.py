"""Why an instance was not stored, as a DICOM status: one table for STOW-RS and C-STORE.

STOW-RS Failure Reason (0008,1197) values (PS3.18 Table I.2-2) share their ranges with
the C-STORE statuses (PS3.4 Table B.2-1), so both ways in answer the same code for the
same refusal:

======  ==========================================  ============================
Code    Meaning                                     When
======  ==========================================  ============================
A700    Refused: out of resources                   over a size limit; storage down
A900    Error: data set does not match SOP Class    missing or invalid UIDs, pixel
                                                    data inconsistent with its header
C000    Error: cannot understand                    not DICOM, malformed, truncated,
                                                    nested too deep, not
                                                    ``application/dicom``
C122    Referenced Transfer Syntax not supported    unknown transfer syntax
C409    Study Instance UID mismatch (ours, as       ``POST /studies/{uid}`` with an
        dcm4chee uses it)                           instance of another study
C410    UID conflict (ours)                         the SOP, series or study UID is
                                                    already stored for another patient,
                                                    study or series: nothing overwritten
0110    Processing failure                          an unexpected error on our side
======  ==========================================  ============================
"""

from __future__ import annotations

import enum

from imaging.dicom.validate import Rejected


class FailureReason(enum.IntEnum):
    OUT_OF_RESOURCES = 0xA700
    DOES_NOT_MATCH_SOP_CLASS = 0xA900
    CANNOT_UNDERSTAND = 0xC000
    TRANSFER_SYNTAX_NOT_SUPPORTED = 0xC122
    STUDY_MISMATCH = 0xC409
    UID_CONFLICT = 0xC410
    PROCESSING_FAILURE = 0x0110


_REJECTED: dict[str, FailureReason] = {
    "too_large": FailureReason.OUT_OF_RESOURCES,
    "bad_uid": FailureReason.DOES_NOT_MATCH_SOP_CLASS,
    "bad_pixels": FailureReason.DOES_NOT_MATCH_SOP_CLASS,
    "bad_transfer_syntax": FailureReason.TRANSFER_SYNTAX_NOT_SUPPORTED,
}


def rejected_reason(exc: Rejected) -> FailureReason:
    """The status for a file :func:`~imaging.dicom.validate.validate_instance` refused."""
    return _REJECTED.get(exc.code, FailureReason.CANNOT_UNDERSTAND)
