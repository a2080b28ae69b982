"""One training device per invocation.

The Hugging Face trainer trains on the first visible GPU and, when several are visible, wraps the
model in DataParallel over all of them, which splits each batch and so changes which in-batch
negatives a row sees. To train on exactly the GPU asked for (cuda = cuda:0, cuda:N), the other GPUs
are hidden from this process through CUDA_VISIBLE_DEVICES, which CUDA reads once, when it starts;
so this must run before anything touches CUDA.
"""

from __future__ import annotations

import os

from hnmine.errors import OptionError


def pin_device(device: str) -> str:
    """The device name to use inside this process after pinning: 'cuda:N' becomes 'cuda:0' of a one-GPU view."""
    if not device.startswith("cuda"):
        return device
    index = int(device.split(":", 1)[1]) if ":" in device else 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [v.strip() for v in visible.split(",") if v.strip()] if visible else None
    if ids is not None and index >= len(ids):
        raise OptionError(f"--device {device}: CUDA_VISIBLE_DEVICES shows {len(ids)} GPU(s) ({visible})")
    wanted = ids[index] if ids is not None else str(index)
    if visible == wanted:
        return "cuda:0"
    import torch

    if torch.cuda.is_initialized():
        raise OptionError(f"--device {device}: CUDA already started in this process; set CUDA_VISIBLE_DEVICES={wanted} before starting it")
    os.environ["CUDA_VISIBLE_DEVICES"] = wanted
    return "cuda:0"
