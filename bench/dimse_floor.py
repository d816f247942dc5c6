"""The C-STORE floor: pynetdicom receiving images and doing the least an archive must.

    python bench/dimse_floor.py --port 11113 --out FOLDER [--ae-title FLOOR]

A Storage SCP configured as ``telemed dicom-scp`` is (every storage SOP class, the same
transfer syntaxes, 1 MiB PDUs, data sets received into a temporary file) whose handler
only parses the header (pydicom, pixels deferred), hashes the file with SHA-256 and
writes it under ``FOLDER`` with one ``fsync``: no validation beyond the parse, no index,
no audit. ``bench/imaging.py`` sends the same series to it with ``storescu`` in the same
run as to ours and to Orthanc: the rate no ingest on pynetdicom and pydicom can pass on
this machine. Not part of the product.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path
from typing import Any

import pydicom
from pydicom.uid import AllTransferSyntaxes
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, _config, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

# As imaging.scp (which needs Django to import).
SYNTAXES = [ts for ts in ALL_TRANSFER_SYNTAXES if ts in AllTransferSyntaxes]
MAX_PDU_BYTES = 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--ae-title", default="FLOOR")
    ns = parser.parse_args()
    ns.out.mkdir(parents=True, exist_ok=True)

    def on_store(event: Any) -> int:
        with open(event.dataset_path, "rb") as f:
            pydicom.dcmread(f, defer_size=64 * 1024)
            f.seek(0)
            data = f.read()
        name = hashlib.sha256(data).hexdigest()
        fd = os.open(ns.out / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        return 0x0000

    _config.STORE_RECV_CHUNKED_DATASET = True
    ae = AE(ae_title=ns.ae_title)
    ae.add_supported_context(Verification, SYNTAXES)
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, SYNTAXES)
    ae.maximum_pdu_size = MAX_PDU_BYTES
    ae.start_server(("127.0.0.1", ns.port), evt_handlers=[(evt.EVT_C_STORE, on_store)], block=True)


if __name__ == "__main__":
    main()
