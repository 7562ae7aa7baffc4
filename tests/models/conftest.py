"""Run the model tests on one torch thread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    # These tests push batches of one or two images, too small to gain from a second thread; and
    # on a shared 2-core machine every multi-threaded op waits for a thread the scheduler parked
    # (measured at load 6: the fast tier took 213 s on two threads and 44 s on one).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
