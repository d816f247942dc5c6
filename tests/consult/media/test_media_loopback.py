"""aioice offers 127.0.0.1 as a host candidate only when told to (consult/media/loopback.py)."""

from __future__ import annotations

import aioice.ice
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from consult.media import loopback


@pytest.fixture(autouse=True)
def _restore():
    yield
    loopback.uninstall()


async def host_candidates() -> list[str]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver("audio")
        await pc.setLocalDescription(await pc.createOffer())
        return [
            line.split()[4]
            for line in pc.localDescription.sdp.splitlines()
            if line.startswith("a=candidate:") and " typ host" in line
        ]
    finally:
        await pc.close()


async def test_installed_addresses_are_the_only_host_candidates():
    loopback.install_host_addresses(["127.0.0.1"])
    assert loopback.installed() == ("127.0.0.1",)
    assert await host_candidates() == ["127.0.0.1"]


async def test_without_it_aioice_never_offers_loopback():
    assert loopback.installed() is None
    assert "127.0.0.1" not in await host_candidates()


def test_addresses_are_filtered_by_family_and_uninstall_restores_discovery():
    original = aioice.ice.get_host_addresses
    loopback.install_host_addresses(["127.0.0.1", "::1"])
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False) == ["127.0.0.1"]
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1", "::1"]
    loopback.uninstall()
    assert aioice.ice.get_host_addresses is original
    assert loopback.installed() is None


def test_a_malformed_address_is_refused():
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        loopback.install_host_addresses(["localhost"])
    with pytest.raises(ValueError, match="no host address given"):
        loopback.install_host_addresses([""])
