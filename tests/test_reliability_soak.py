"""Soak: consecutive Generate requests on the home page (AppTest, one session, a tiny model) must not make
the process keep anything per request. After a warm-up, the memory that live objects hold (tracemalloc's
traced total, which includes numpy arrays, plus the storage of every live torch tensor, which tracemalloc
does not see) is measured after each request; its growth per request, a least-squares slope, must stay well
under the size of one request's grid, so keeping even one grid (or its tensor) per request fails."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest
import torch

from diffusion_core.services import batching
from tests.app_support import app, errors, no_exceptions, shipped_folder, write_checkpoint

WARM_UP = 3
REQUESTS = 12
# Growth per request allowed, as a fraction of one request's grid (16×28×28 float32, 50 KB). Measured here: about
# +240 bytes per request as the app is; +50.8 KB with each request's grid, or its samples tensor, kept in a
# module-level list.
SLOPE_BOUND = 0.25


def retained_bytes() -> int:
    """Bytes held by live objects after a full collection: Python objects and numpy arrays (tracemalloc) plus
    the storage of every live torch tensor (torch's allocator is not traced), each storage counted once."""
    gc.collect()
    storages = {}
    for obj in gc.get_objects():
        if issubclass(type(obj), torch.Tensor) and obj.layout == torch.strided and obj.device.type != "meta":
            storage = obj.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
    return tracemalloc.get_traced_memory()[0] + sum(storages.values())


@pytest.mark.slow
@pytest.mark.extended  # (20 s of repeated requests; the bounded cache has its own tests)
def test_generate_requests_keep_nothing_per_request(tmp_path, monkeypatch):
    """Beyond the sample cache's bounded entries (#30: 64 grids by default; 2 here, filled in the warm-up), nothing
    grows with the requests."""
    monkeypatch.setattr(batching, "_cache", batching.SampleCache(2))
    shipped = shipped_folder(tmp_path, monkeypatch)
    write_checkpoint(shipped, "tiny", T=20)
    at = app().run()

    def generate(seed: int) -> None:
        at.number_input(key="home_seed").set_value(seed)
        at.button(key="home_generate").click().run()
        assert at.session_state["home_grid"]["seed"] == seed, errors(at)

    tracemalloc.start()
    try:
        for seed in range(WARM_UP):
            generate(seed)
        held = []
        for seed in range(WARM_UP, WARM_UP + REQUESTS):
            generate(seed)
            held.append(retained_bytes())
    finally:
        tracemalloc.stop()
    no_exceptions(at)
    assert errors(at) == []
    grid = at.session_state["home_grid"]["images"]
    assert grid.shape == (16, 28, 28)  # one grid kept, the latest
    assert len(at.image) == 1
    slope = np.polyfit(np.arange(REQUESTS), held, 1)[0]
    assert slope < SLOPE_BOUND * grid.nbytes, (
        f"live objects grew by {slope:.0f} bytes per Generate request (one grid is {grid.nbytes} bytes)")
