"""The ``images`` backend: a folder of image files as a video (Pillow). Internal
module; ``load_video(folder)`` calls :func:`load_image_folder`.
"""

from __future__ import annotations

import os

import numpy as np

from .frames import VideoClip, VideoDecodeError, make_clip
from .sampling import sample_frame_indices


def load_image_folder(path: str, num_frames: int, fps: float | None) -> VideoClip:
    """A folder of images as a video: image files sorted by name, hidden files skipped."""
    from PIL import Image, UnidentifiedImageError

    if fps is not None:
        raise ValueError(f"load_video: fps= needs a frame rate; the folder '{path}' has none")
    extensions = _image_extensions()
    names = sorted(
        name
        for name in os.listdir(path)
        if not name.startswith(".")
        and os.path.splitext(name)[1].lower() in extensions
        and os.path.isfile(os.path.join(path, name))
    )
    if not names:
        raise VideoDecodeError(path, "the folder holds no image files")
    indices = sample_frame_indices(len(names), num_frames)
    unique = sorted(set(indices))
    decoded: dict[int, np.ndarray] = {}
    for i in unique:
        file = os.path.join(path, names[i])
        try:
            with Image.open(file) as image:
                decoded[i] = np.asarray(image.convert("RGB"))
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise VideoDecodeError(path, f"cannot read image '{names[i]}': {exc}") from exc
    shapes = {a.shape for a in decoded.values()}
    if len(shapes) > 1:
        raise VideoDecodeError(path, f"the images differ in size: {sorted(shapes)}")
    array = np.stack([decoded[i] for i in indices])
    return make_clip(array, indices, len(names), None, "images", path)


def _image_extensions() -> set[str]:
    from PIL import Image

    return {ext.lower() for ext in Image.registered_extensions()}
