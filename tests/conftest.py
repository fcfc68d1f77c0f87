"""Shared fixtures. Tests that need ``../shared`` use the ``shared`` fixture and skip cleanly without it."""

from __future__ import annotations

import os
import tempfile

import pytest

# Keep the suite predictable on small CI machines (2 cores, pytest-xdist with 2 workers).
os.environ.setdefault("OMP_NUM_THREADS", "1")
# The evaluation's fused-output cache (default ~/.cache/gifnet) goes to a folder of this test process.
os.environ["GIFNET_CACHE_DIR"] = tempfile.mkdtemp(prefix="gifnet-test-cache-")

import torch  # noqa: E402

from gifnet.paths import shared_root  # noqa: E402

torch.set_num_threads(1)


IN_CI = os.environ.get("CI", "").lower() == "true"


def missing_shared(reason: str) -> None:
    """A test's ``../shared`` input is missing: skip locally, but fail in CI (``CI=true``), where it must exist."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: tests that need ../shared must run in CI)")
    pytest.skip(reason)


@pytest.fixture
def torch_threads():
    """For a test that changes torch's intra-op thread count: restores it afterwards."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shared():
    """Path of the read-only ``../shared`` folder; skips the test when it is absent (fails in CI)."""
    root = shared_root()
    if root is None:
        missing_shared("../shared not available")
    return root


def pytest_collection_modifyitems(config, items):
    """Every test that uses the ``shared`` fixture carries the ``shared`` marker (``-m "not shared"`` works)."""
    for item in items:
        if "shared" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared)


def random_pair(h: int = 37, w: int = 53, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two seeded random ``batch×1×h×w`` luma tensors in [0, 1) (a generated input pair)."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 1, h, w, generator=g), torch.rand(batch, 1, h, w, generator=g)
