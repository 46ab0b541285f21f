"""The plugin's media connector, ``sfllava`` (``VLLM_MEDIA_CONNECTOR=sfllava``): vLLM's
own, with the rules of ``sfllava serve`` (docs/security.md#vllm):

- a ``file://`` URL is read only if it is a regular file inside
  ``--allowed-local-media-path``, checked on the opened descriptor, not on a path
  resolved earlier (vLLM's check resolves the path, then opens it again);
- ``http(s)://`` URLs are refused unless ``SFLLAVA_ALLOW_FETCH=1`` (``sfllava serve
  --engine vllm --allow-fetch``, which needs ``--allowed-media-domains``);
- a video's ``data:`` URL is decoded by the video loader (ours, within its limits);
  vLLM's own ``video/jpeg`` frame lists, which it decodes itself, are refused;
- precomputed embeddings (``video_embeds``) are checked before vLLM stacks them
  (:func:`check_embeddings`): a tensor that claims more memory than it carries, or
  one that is not a finite 2-D floating point matrix, is refused.

Every refusal is a ValueError, which vLLM answers with 400.
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlparse

from ..utils.paths import NotARegularFileError, OutsideRootError, open_inside

__all__ = [
    "ALLOW_FETCH_ENV",
    "CONNECTOR",
    "check_embeddings",
    "local_media_bytes",
    "register_connector",
]

#: the name vLLM knows this connector by (VLLM_MEDIA_CONNECTOR)
CONNECTOR = "sfllava"
#: set to 1 to let http(s) URLs through (to vLLM's domain allowlist)
ALLOW_FETCH_ENV = "SFLLAVA_ALLOW_FETCH"


def local_media_bytes(url: str, media_dir: str | None, max_bytes: int | None = None) -> bytes:
    """The bytes of the regular file a ``file://`` URL names inside ``media_dir``.

    Raises:
        PermissionError: no media dir was allowed, or the file (or what was opened)
            lies outside it.
        FileNotFoundError: no such file.
        ValueError: a URL with a host or a relative path, not a regular file, over
            ``max_bytes``.
    """
    if not media_dir:
        raise PermissionError("file:// URLs are refused: no --allowed-local-media-path")
    parsed = urlparse(url)
    if parsed.netloc not in ("", "localhost"):
        raise ValueError("a file:// URL names no host")
    path = unquote(parsed.path, errors="strict")
    if "\x00" in path or not os.path.isabs(path):
        raise ValueError("a file:// URL needs an absolute path")
    root = os.path.realpath(media_dir)
    try:
        fd = open_inside(path, root)
    except OutsideRootError:
        raise PermissionError("the file:// URL leads outside the allowed media path") from None
    except NotARegularFileError:
        raise ValueError("the media file is not a regular file") from None
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if max_bytes is not None and size > max_bytes:
            raise ValueError(f"the media file is over {max_bytes} bytes")
        return f.read()


def check_embeddings(tensor: object) -> object:
    """Precomputed visual tokens as a client sent them, checked: a dense, contiguous,
    finite, floating point ``(num_tokens, hidden)`` tensor whose storage holds every
    value (``torch.load`` keeps strides: an expanded tensor would claim gigabytes from
    a few bytes when vLLM stacks it).

    Raises:
        ValueError: anything else, naming ``video_embeds``.
    """
    import torch

    if not isinstance(tensor, torch.Tensor) or tensor.layout != torch.strided:
        raise ValueError("video_embeds must be a dense tensor")
    if tensor.dim() != 2 or 0 in tensor.shape:
        raise ValueError(
            f"video_embeds must be (num_tokens, hidden), got shape {tuple(tensor.shape)}"
        )
    if not tensor.is_floating_point():
        raise ValueError(f"video_embeds must be floating point, got {tensor.dtype}")
    stored = tensor.untyped_storage().nbytes() - tensor.storage_offset() * tensor.element_size()
    if not tensor.is_contiguous() or stored < tensor.numel() * tensor.element_size():
        raise ValueError("video_embeds must be contiguous, every value stored")
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError("video_embeds holds NaN or infinite values")
    return tensor


def register_connector() -> None:
    """Registers the ``sfllava`` media connector with vLLM (once)."""
    from vllm.multimodal.media.connector import (
        MEDIA_CONNECTOR_REGISTRY,
        MediaConnector,
        global_thread_pool,
    )
    from vllm.multimodal.media.video import VideoMediaIO

    if CONNECTOR in MEDIA_CONNECTOR_REGISTRY.name2class:
        return

    class SlowFastMediaConnector(MediaConnector):
        """vLLM's connector; local files checked on the descriptor, fetching off."""

        def _checked(self, url: str, media_io):
            """Refuses what this server does not load; reads a ``file://`` URL itself
            (its loaded media); None: vLLM's own loading goes on."""
            scheme = urlparse(url).scheme.lower()
            if scheme == "data" and isinstance(media_io, VideoMediaIO):
                media_type = url[5:].partition(",")[0].partition(";")[0].strip().lower()
                if media_type == "video/jpeg":
                    raise ValueError(
                        "video/jpeg frame lists are refused on this server: send the video "
                        "file (its frames are decoded within limits)"
                    )
            if scheme.startswith("http") and os.environ.get(ALLOW_FETCH_ENV) != "1":
                raise ValueError(
                    "fetching media from the network is off on this server; send the "
                    "video as a data: URL or a file:// URL in its media dir"
                )
            if scheme == "file":
                media_dir = self.allowed_local_media_path
                max_bytes = getattr(media_io, "get_max_bytes", lambda: None)()
                try:
                    data = local_media_bytes(
                        url, None if media_dir is None else str(media_dir), max_bytes
                    )
                except OSError as exc:  # vLLM answers a ValueError with 400
                    raise ValueError(str(exc)) from None
                return media_io.load_bytes(data)
            return None

        def fetch_video_embedding(self, data):
            try:
                loaded = super().fetch_video_embedding(_embedding_text(data))
            except ValueError:
                raise
            except Exception as exc:  # a payload torch.load cannot read: the client's fault
                raise ValueError(_UNREADABLE.format(type(exc).__name__)) from None
            return check_embeddings(loaded)

        async def fetch_video_embedding_async(self, data):
            try:
                loaded = await super().fetch_video_embedding_async(_embedding_text(data))
            except ValueError:
                raise
            except Exception as exc:
                raise ValueError(_UNREADABLE.format(type(exc).__name__)) from None
            return check_embeddings(loaded)

        def load_from_url(self, url, media_io, *, fetch_timeout=None):
            loaded = self._checked(url, media_io)
            if loaded is not None:
                return loaded
            return super().load_from_url(url, media_io, fetch_timeout=fetch_timeout)

        async def load_from_url_async(self, url, media_io, *, fetch_timeout=None):
            if urlparse(url).scheme.lower() == "file":
                import asyncio

                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(global_thread_pool, self._checked, url, media_io)
            self._checked(url, media_io)  # refuses http(s) unless allowed, and video/jpeg
            return await super().load_from_url_async(url, media_io, fetch_timeout=fetch_timeout)

    MEDIA_CONNECTOR_REGISTRY.register(CONNECTOR)(SlowFastMediaConnector)


_UNREADABLE = "video_embeds is not a tensor saved with torch.save, in base64 ({})"


def _embedding_text(data: object) -> str:
    if not isinstance(data, str):
        raise ValueError("video_embeds must be one base64 string (torch.save of a tensor)")
    return data
