"""Shared test settings: one intra-op thread per process (tests spawn several processes on
small CPUs, where oversubscribed OpenMP threads slow everything down by orders of magnitude)."""
import os

os.environ.setdefault('OMP_NUM_THREADS', '1')

import torch  # noqa: E402

torch.set_num_threads(1)
