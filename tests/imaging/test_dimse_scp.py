"""DIMSE: the storage SCP answers C-ECHO and C-STORE from registered calling AE titles only."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator

import pytest
from django.db import DatabaseError
from pydicom.data import get_testdata_file
from pynetdicom import AE, _config
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    MRImageStorage,
    Verification,
)

from association.models import Institution
from audit.models import AuditEvent
from imaging.models import AETitle, Instance
from imaging.scp import ScpOptions, make_server

pytestmark = pytest.mark.django_db(transaction=True)

OUR_AE = "TELEMED"
SENDER = "XIBA_CT"
EXPLICIT_LE = "1.2.840.10008.1.2.1"


@pytest.fixture
def scp_port() -> Iterator[int]:
    AETitle.objects.get_or_create(
        ae_title=SENDER, defaults={"institution": Institution.objects.get(code="xiba")}
    )
    chunked = _config.STORE_RECV_CHUNKED_DATASET
    server = make_server(ScpOptions(ae_title=OUR_AE, bind="127.0.0.1", port=0))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.ae.shutdown()
    thread.join(5)
    _config.STORE_RECV_CHUNKED_DATASET = chunked


def associate(port: int, calling: str = SENDER):
    ae = AE(ae_title=calling)
    ae.add_requested_context(Verification)
    ae.add_requested_context(CTImageStorage, EXPLICIT_LE)
    ae.add_requested_context(MRImageStorage, EXPLICIT_LE)
    return ae.associate("127.0.0.1", port, ae_title=OUR_AE)


def test_c_echo_succeeds_for_a_registered_ae_title(scp_port):
    assoc = associate(scp_port)
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()


def test_c_store_of_several_files_stores_and_indexes_them_for_the_institution(scp_port):
    assoc = associate(scp_port)
    statuses = [
        assoc.send_c_store(get_testdata_file(name)).Status
        for name in ("CT_small.dcm", "MR_small.dcm")
    ]
    assoc.release()
    assert statuses == [0x0000, 0x0000]
    instances = Instance.objects.select_related("series__study__source_institution")
    assert {i.received_via for i in instances} == {"dimse"}
    assert {i.series.study.source_institution.code for i in instances} == {"xiba"}
    assert instances.count() == 2


def test_the_same_instance_again_succeeds_and_changes_nothing(scp_port):
    assoc = associate(scp_port)
    first = assoc.send_c_store(get_testdata_file("CT_small.dcm")).Status
    again = assoc.send_c_store(get_testdata_file("CT_small.dcm")).Status
    assoc.release()
    assert (first, again) == (0x0000, 0x0000)
    assert Instance.objects.count() == 1


def test_an_unknown_calling_ae_title_is_rejected_and_audited(scp_port):
    assoc = associate(scp_port, calling="STRANGER")
    assert assoc.is_rejected
    assert assoc.acceptor.primitive.result_source == 0x01
    assert assoc.acceptor.primitive.diagnostic == 0x03  # calling AE title not recognised
    event = AuditEvent.objects.filter(action="dimse.associate").latest("id")
    assert (event.outcome, event.resource_id) == ("denied", "STRANGER")


def test_an_inactive_ae_title_is_rejected(scp_port):
    AETitle.objects.filter(ae_title=SENDER).update(active=False)
    assert associate(scp_port).is_rejected


def test_an_association_is_rejected_transiently_while_the_database_is_down(scp_port, monkeypatch):
    class Down:
        class objects:  # stands in for the model manager
            @staticmethod
            def select_related(*args):
                raise DatabaseError("database is down")

    monkeypatch.setattr("imaging.scp.AETitle", Down)
    assoc = associate(scp_port)
    assert assoc.is_rejected
    assert assoc.acceptor.primitive.result == 0x02  # rejected-transient: try again later


def test_a_truncated_file_gets_a_failure_status_with_a_comment(scp_port, monkeypatch):
    # Send the file's bytes as they are (pynetdicom would otherwise decode and re-encode).
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)
    assoc = associate(scp_port)
    status = assoc.send_c_store(get_testdata_file("MR_truncated.dcm"))
    assoc.release()
    assert status.Status == 0xC000
    assert "truncated" in status.ErrorComment
    assert Instance.objects.count() == 0


@pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk's storescu is not installed")
def test_dcmtk_storescu_stores_a_file(scp_port):
    result = subprocess.run(
        [
            "storescu",
            "-aet",
            SENDER,
            "-aec",
            OUR_AE,
            "127.0.0.1",
            str(scp_port),
            get_testdata_file("CT_small.dcm"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TCP_NODELAY": "1"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert Instance.objects.filter(received_via="dimse").count() == 1


@pytest.mark.skipif(shutil.which("echoscu") is None, reason="dcmtk's echoscu is not installed")
def test_dcmtk_echoscu_from_an_unknown_ae_title_is_refused(scp_port):
    result = subprocess.run(
        ["echoscu", "-aet", "STRANGER", "-aec", OUR_AE, "127.0.0.1", str(scp_port)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert re.search(r"calling ae title not recogni[sz]ed", (result.stdout + result.stderr).lower())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ae-title", "A\\B"], "not an AE title"),
        (["--bind", "scanner.local"], "not an IPv4 or IPv6 address"),
    ],
)
def test_telemed_dicom_scp_refuses_bad_options_with_a_message(args, message, capsys):
    from config.cli import main

    assert main(["dicom-scp", *args]) == 2
    assert message in capsys.readouterr().err


def test_each_association_gets_its_own_copy_of_the_supported_contexts():
    import copy

    server = make_server(ScpOptions(ae_title="TELEMED", bind="127.0.0.1", port=0))
    try:
        copies = copy.deepcopy(server.contexts)
        assert copies == list(server.contexts)  # the same contexts, field by field
        first, original = copies[0], server.contexts[0]
        assert first is not original
        first.add_transfer_syntax("1.2.3.4")  # negotiation writes into the copy only
        first.result = 0
        assert "1.2.3.4" not in original.transfer_syntax
        assert original.result is None
    finally:
        server.server_close()
