"""The provenance tests' signing PKI, made once a session (no key or certificate is stored)."""

from __future__ import annotations

import pytest
from provenance_files import SigningPki, make_pki


@pytest.fixture(scope="session")
def pki() -> SigningPki:
    """A root CA and an ES256 claim-signing leaf, generated for this session."""
    return make_pki()
