"""Shared test fixtures: the reference's tiny AID / UNet priors (``tests/fixtures/aid``, copied from the reference-conformance fixtures)."""

from __future__ import annotations

from pathlib import Path

import pytest

#: Conformance fixtures made with the reference code (see their README).
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "aid"


def _fixture_prior(name: str):
    from mrirecon.prior import load_prior

    d = FIXTURES / name
    return load_prior(config=d / "config.yaml", weights=d / "model.pt")


@pytest.fixture(scope="module")
def aid():
    """The reference Causal-UNet at 32 px with random weights (``causal_tiny``)."""
    return _fixture_prior("causal_tiny")


@pytest.fixture(scope="module")
def unet():
    """The reference plain UNet at 32 px with random weights (``unet_tiny``)."""
    return _fixture_prior("unet_tiny")
