"""The ``images`` backend: a folder of image files as a video (Pillow). Internal
module; ``load_video(folder)`` calls :func:`load_image_folder`.

Under :class:`~sfllava_ext.video.limits.DecodeLimits` each sampled image's size, read
from its header, is checked against ``max_pixels`` and added to ``max_decoded_pixels``
before the image is decoded, and the deadline is checked before each image. With
``limits.formats`` set (FFmpeg demuxer names, which do not apply to Pillow), only
Pillow's readers of :data:`SAFE_IMAGE_FORMATS` are tried: common raster formats decoded
in the process (not, say, EPS, which Pillow hands to Ghostscript).
"""

from __future__ import annotations

import os

import numpy as np

from .frames import VideoClip, VideoDecodeError, make_clip
from .limits import DecodeLimits, DecodeMeter, VideoLimitError
from .sampling import sample_frame_indices

#: Pillow's readers tried for a folder under limits with a format allowlist.
SAFE_IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")


def load_image_folder(
    path: str, num_frames: int, fps: float | None, limits: DecodeLimits | None = None
) -> VideoClip:
    """A folder of images as a video: image files sorted by name, hidden files skipped;
    under ``limits``, each sampled image is checked before it is decoded (and, with
    ``limits.formats``, read only as one of :data:`SAFE_IMAGE_FORMATS`).

    Raises:
        VideoDecodeError: no image files, an image that cannot be read, sizes that differ.
        VideoLimitError: an image over ``limits.max_pixels``, the sum over
            ``limits.max_decoded_pixels``, or the deadline passed.
        ValueError: ``fps`` given (a folder has no frame rate).
    """
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
    meter = DecodeMeter(limits, path) if limits is not None else None
    readers = SAFE_IMAGE_FORMATS if limits is not None and limits.formats is not None else None
    for i in unique:
        file = os.path.join(path, names[i])
        try:
            with Image.open(file, formats=readers) as image:
                if meter is not None:  # the header's size, before the pixels are decoded
                    meter.frame(*image.size, what=f"the image '{names[i]}'")
                decoded[i] = np.asarray(image.convert("RGB"))
        except VideoLimitError:
            raise  # a ValueError too, but not the image's fault
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
