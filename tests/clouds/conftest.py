"""Fixtures for the cloud-profile tests: a loopback OpenStack, unsigned JWTs, and the IM's own auth parser."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from tests.clouds.openstack_fake import FakeCloud, RunningFake, glance_image, nova_flavor


def make_jwt(claims: dict[str, Any]) -> str:
    """An unsigned JWT-shaped token (header.payload.signature) with the given claims."""

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


@pytest.fixture
def openstack_fake() -> Iterator[RunningFake]:
    cloud = FakeCloud(
        flavors=[
            nova_flavor("1", "m1.small", 1, 2048, 20),
            nova_flavor("2", "m1.medium", 2, 4096, 40),
            nova_flavor("3", "m1.large", 4, 8192, 80),
            nova_flavor("4", "g1.a100x2", 8, 65536, 100, {"pci_passthrough:alias": "a100:2"}),
            nova_flavor("5", "v1.vgpu", 4, 16384, 40, {"resources:VGPU": "1"}),
        ],
        images=[
            glance_image("11111111-aaaa", "Ubuntu 22.04"),
            glance_image("22222222-bbbb", "Rocky 9"),
            glance_image("33333333-cccc", "Old image", status="deactivated"),
        ],
    )
    with RunningFake(cloud) as fake:
        yield fake


@pytest.fixture(scope="session")
def im_parse():
    """Parse an Authorization header exactly as the IM server does (its own code, from the IM package)."""
    pytest.importorskip("IM")
    import IM.rest.REST  # noqa: F401 - loads the routers package in the order the IM itself does
    from IM.rest.routers import get_auth_header

    def parse(header: str) -> list[dict[str, str]]:
        return get_auth_header(SimpleNamespace(base_url="http://127.0.0.1/"), header).auth_list

    return parse
