"""Band-wise inference engine: equal to the full forward for every architecture switch, size, band and step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import random_pair

from gifnet.inference.banded import PARTS, banded_fuse
from gifnet.inference.engine import fuse_tensors
from gifnet.models import GIFNet

CONFIGS = [
    {},
    {"gating": "off"},
    {"gating": "fixed", "gate_value": 0.3},
    {"cross_attention": False},
    {"dual_stream": False},
    {"official_dwconv_quirk": False},
    {"depth": 3},
    {"depth": 4, "window": 4, "heads": 1},
    {"enc_width": 8, "enc_layers": 2, "mlp_ratio": 1.5},
]


def _perturbed(**kw) -> GIFNet:
    """A model whose RLN affine / meta weights are not at their init values (so folding them is exercised)."""
    torch.manual_seed(0)
    m = GIFNet(**kw).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return m


def _pair(h, w, batch=1, seed=0):
    return random_pair(h, w, batch, seed)


@pytest.mark.parametrize("kw", CONFIGS, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "default")
def test_banded_equals_full_forward(kw):
    m = _perturbed(**kw)
    for h, w in [(5, 5), (21, 30), (43, 37)]:
        a, b = _pair(h, w)
        for step in ("dp", "mm"):
            with torch.no_grad():
                ref = m(a, b, step)
            for band_pixels in (1, 200, 1 << 15):  # one window row per band … the whole image in one band
                out = banded_fuse(m, a, b, step, band_pixels=band_pixels)
                assert out.shape == ref.shape
                assert (out - ref).abs().max() <= 1e-5, (h, w, step, band_pixels)


def test_banded_batch_and_fuse_entry_point():
    m = _perturbed()
    a, b = _pair(19, 26, batch=3)
    with torch.no_grad():
        ref = m(a, b)
    assert (fuse_tensors(m, a, b) - ref).abs().max() <= 1e-5
    assert (fuse_tensors(m, a, b, engine="full") - ref).abs().max() <= 1e-5
    # each sample is independent of the others (per-sample RLN statistics)
    assert (fuse_tensors(m, a[1:2], b[1:2]) - ref[1:2]).abs().max() <= 1e-5


def test_banded_bf16_is_close_and_fp32_parts_restore_fp32():
    m = _perturbed()
    a, b = _pair(24, 40)
    ref = banded_fuse(m, a, b)
    low = banded_fuse(m, a, b, precision="bf16")
    assert low.dtype == torch.float32
    assert 0 < (low - ref).abs().max() < 0.05
    for parts in ((), ("dec",), ("mix",)):  # the G-Dec input in bfloat16 (stored exactly in the float32 buffer)
        assert 0 < (banded_fuse(m, a, b, precision="bf16", fp32_parts=parts, band_pixels=200) - ref).abs().max() < 0.05
    same = banded_fuse(m, a, b, precision="bf16", fp32_parts=PARTS)
    assert (same - ref).abs().max() <= 1e-6


@pytest.mark.parametrize("kw", CONFIGS, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "default")
def test_bf16_rearrangement_is_exact(kw):
    """The bf16 path's rearranged arithmetic (centred product inputs, biases moved out of the products, the V and
    depthwise constants folded into the projection bias, the K bias dropped) equals fp32 when run in fp32."""
    m = _perturbed(**kw)
    a, b = _pair(21, 30)
    for step in ("dp", "mm"):
        ref = banded_fuse(m, a, b, step)
        same = banded_fuse(m, a, b, step, precision="bf16", fp32_parts=PARTS, band_pixels=200)
        assert (same - ref).abs().max() <= 1e-5, step


def test_bf16_centring_halves_the_deviation(monkeypatch):
    """bf16 products see ``x - channel mean`` (feature channels sit far from zero: 2-3 standard deviations in the
    released model); with the centring disabled the same model deviates about twice as much from fp32."""
    from gifnet.inference import banded

    m = _perturbed()
    a, b = _pair(48, 64)
    ref = banded_fuse(m, a, b)
    dev = (banded_fuse(m, a, b, precision="bf16") - ref).abs().mean()
    monkeypatch.setattr(banded._Stats, "channel_means", lambda self: torch.zeros_like(self.sc, dtype=torch.float32))
    dev_plain = (banded_fuse(m, a, b, precision="bf16") - ref).abs().mean()
    assert dev < 0.7 * dev_plain, (dev, dev_plain)


def test_full_resolution_buffers_are_pooled_per_size(monkeypatch):
    """Feature buffers are memory maps reused by the next call of the same size when the process keeps freed
    memory (outputs unaffected by their stale contents), replaced when the size changes, released on request;
    without that setting every call releases them."""
    from gifnet import runtime
    from gifnet.inference import banded

    m = _perturbed()
    a, b = _pair(21, 30)
    monkeypatch.setattr(runtime, "_applied", False)
    first = banded_fuse(m, a, b, band_pixels=200)
    assert not banded._POOL.free
    monkeypatch.setattr(runtime, "_applied", True)
    banded_fuse(m, a, b, band_pixels=200)
    pooled = list(banded._POOL.free)
    assert pooled and all(tuple(t.shape) == (24 * 32, m.fusion.dim) for t in pooled)
    again = banded_fuse(m, a, b, band_pixels=200)
    assert torch.equal(first, again)
    assert {t.data_ptr() for t in banded._POOL.free} == {t.data_ptr() for t in pooled}  # reused, not re-mapped
    banded_fuse(m, *_pair(9, 13))
    assert all(tuple(t.shape) == (12 * 16, m.fusion.dim) for t in banded._POOL.free)
    banded.release_buffers()
    assert not banded._POOL.free


@pytest.mark.parametrize("kw, peak", [({}, 3), ({"dual_stream": False}, 2)], ids=["default", "single-stream"])
def test_last_pass_maps_no_extra_buffer(monkeypatch, kw, peak):
    """The G-Dec input map of the last pass lives in a buffer a block pass freed: a call maps as many full-resolution
    buffers as its block passes hold at once (three with two streams, two with one) and no more."""
    from gifnet import runtime
    from gifnet.inference import banded

    monkeypatch.setattr(runtime, "_applied", True)
    banded.release_buffers()
    maps = []
    monkeypatch.setattr(banded.mmap, "mmap", lambda *args: maps.append(args) or bytearray(args[1]))
    m = _perturbed(**kw)
    a, b = _pair(21, 30)
    with torch.no_grad():
        ref = m(a, b)
    assert (banded_fuse(m, a, b, band_pixels=200) - ref).abs().max() <= 1e-5
    assert len(maps) == peak
    banded.release_buffers()


def test_rln_statistics_do_not_depend_on_the_thread_count(torch_threads):
    """The band statistics (the next RLN's mean and std, the channel centres) are the same bits with 1, 2 and 3
    threads. Full reductions (``mean()``, ``dot``) are split among torch's threads, and with them 3 pixels of
    TNO_01 came out one grey level apart between 1 and 2 threads; the statistics now sum per channel."""
    from gifnet.inference.banded import _Stats

    g = torch.Generator().manual_seed(0)
    # two maps of 3 chunks + a partial one each, large enough for torch to parallelise every reduction
    maps = [torch.randn(3 * 4096 + 1000, 98, generator=g) * 2.5 + 0.7 + torch.arange(98) / 50 for _ in range(2)]
    results = []
    for n in (1, 2, 3):
        torch.set_num_threads(n)
        st = _Stats(torch.device("cpu"))
        for x in maps:
            st.add(x)
        results.append((*st.mean_std(1e-5), st.channel_means()))
    for other in results[1:]:
        for got, ref in zip(other, results[0]):
            assert torch.equal(got, ref)
    x = torch.cat(maps).double()
    mean, std = results[0][:2]
    assert abs(float(mean) - float(x.mean())) <= 1e-6 * float(x.abs().mean())
    assert abs(float(std) - float(torch.sqrt(x.var(correction=0) + 1e-5))) <= 1e-6 * float(std)
    assert torch.allclose(results[0][2].double(), x.mean(0), rtol=0, atol=1e-5)


def test_bad_arguments():
    m = GIFNet().eval()
    a, b = _pair(8, 8)
    with pytest.raises(ValueError, match="precision"):
        fuse_tensors(m, a, b, precision="fp16")
    with pytest.raises(ValueError, match="engine"):
        fuse_tensors(m, a, b, engine="tiles")
    with pytest.raises(ValueError, match="step"):
        banded_fuse(m, a, b, step="ivif")
    with pytest.raises(ValueError, match="at least"):
        banded_fuse(m, *_pair(4, 9))


CASES = ["ivif", "mfif", "meif", "medical", "nirvis", "remote_band1"]


@pytest.mark.parametrize("case", CASES)
def test_bf16_deviation_on_parity_fixtures(shared, case):
    """bf16 stays within the documented worst case of fp32 on the released checkpoint (default policy; measured
    2026-11-30: worst max 0.55 (meif), worst mean 0.051)."""
    from gifnet.models.convert import load_official

    m = load_official(shared / "official" / "Final.model")
    d = np.load(shared / "official" / "parity" / f"{case}.npz")
    a = torch.from_numpy(d["a"].astype(np.float32) / 255)[None, None]
    b = torch.from_numpy(d["b"].astype(np.float32) / 255)[None, None]
    y32 = fuse_tensors(m, a, b)[0, 0].numpy()
    assert np.abs(y32 - d["fused"]).max() <= 1e-5
    dev = np.abs(fuse_tensors(m, a, b, precision="bf16")[0, 0].numpy() - y32) * 255
    # the documented worst case (docs/inference.md: max 0.55, mean 0.051 grey levels) plus 10 % for other CPUs'
    # accumulation order
    assert dev.max() <= 0.61 and dev.mean() <= 0.057, (dev.max(), dev.mean())
