"""``manage.py dicom_scp`` (also ``telemed dicom-scp``): run the DIMSE storage SCP."""

from __future__ import annotations

import argparse
import ipaddress
import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from imaging.scp import ScpOptions, default_options, make_server


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not between 1 and 65535")
    return port


def _address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an IPv4 or IPv6 address") from None


def _ae_title(value: str) -> str:
    """1-16 characters of printable ASCII other than backslash (PS3.5 AE VR)."""
    title = value.strip()
    if not 1 <= len(title) <= 16 or not all(" " <= c <= "~" and c != "\\" for c in title):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an AE title (1-16 printable ASCII characters, no backslash)"
        )
    return title


class Command(BaseCommand):
    help = "Receive DICOM by DIMSE: C-ECHO and C-STORE from registered calling AE titles."

    def add_arguments(self, parser: CommandParser) -> None:
        defaults = default_options()
        parser.add_argument(
            "--bind",
            type=_address,
            default=defaults.bind,
            help=f"address to listen on ({defaults.bind})",
        )
        parser.add_argument(
            "--port", type=_port, default=defaults.port, help=f"TCP port ({defaults.port})"
        )
        parser.add_argument(
            "--ae-title",
            type=_ae_title,
            default=defaults.ae_title,
            help=f"our (called) AE title ({defaults.ae_title})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # pynetdicom logs every PDU and request at INFO; a busy modality would flood the log.
        level = logging.INFO if options["verbosity"] >= 2 else logging.WARNING
        logging.getLogger("pynetdicom").setLevel(level)
        scp = ScpOptions(ae_title=options["ae_title"], bind=options["bind"], port=options["port"])
        server = make_server(scp)
        self.stdout.write(f"DICOM SCP {scp.ae_title} listening on {scp.bind}:{scp.port}")
        self.stdout.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.shutdown()
            server.ae.shutdown()
