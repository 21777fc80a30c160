"""A PNG written row band by row band, so an upscale holds one band of the output, not the whole image.

The pixels are exactly those of the in-memory path (only the encoder differs: Paeth filtering on every row,
zlib level 6, which PIL's adaptive filter matches within a few percent of size)."""
from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

import numpy as np

__all__ = ["PngStreamWriter"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPE = {1: 0, 3: 2}  # channels -> PNG colour type (grayscale, truecolour)
_ROWS_PER_CHUNK = 64  # rows filtered at a time: bounds the int16 temporaries to a few MB


class PngStreamWriter:
    """Write an 8-bit grayscale or RGB PNG of ``width`` x ``height`` to ``fh`` in bands of rows, top to bottom.

    ``icc_profile`` and ``exif`` (bytes, as PIL keeps them in ``info``) go into iCCP and eXIf chunks."""

    def __init__(self, fh: BinaryIO, width: int, height: int, channels: int, *, icc_profile: bytes | None = None,
                 exif: bytes | None = None, compress_level: int = 6) -> None:
        if channels not in _COLOR_TYPE:
            raise ValueError(f"streamed PNGs are grayscale or RGB, not {channels} channels")
        self.fh, self.width, self.height, self.channels = fh, width, height, channels
        self.rows_written = 0
        self._previous = np.zeros((width * channels,), np.uint8)  # the row above the first is zero (PNG spec)
        self._zlib = zlib.compressobj(compress_level)
        fh.write(_SIGNATURE)
        self._chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, _COLOR_TYPE[channels], 0, 0, 0))
        if icc_profile:
            self._chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc_profile))
        if exif:
            self._chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif)

    def write_rows(self, rows: np.ndarray) -> None:
        """Append ``rows``: uint8 (n, width) for grayscale or (n, width, 3) for RGB."""
        rows = np.ascontiguousarray(np.asarray(rows), dtype=np.uint8)
        rows = rows.reshape(len(rows), self.width * self.channels)
        if self.rows_written + len(rows) > self.height:
            raise ValueError(f"{self.rows_written + len(rows)} rows written to a PNG of height {self.height}")
        for start in range(0, len(rows), _ROWS_PER_CHUNK):
            block = rows[start : start + _ROWS_PER_CHUNK]
            data = self._zlib.compress(_paeth_filtered(block, self._previous, self.channels).tobytes())
            if data:
                self._chunk(b"IDAT", data)
            self._previous = block[-1].copy()
        self.rows_written += len(rows)

    def close(self) -> None:
        if self.rows_written != self.height:
            raise ValueError(f"a PNG of height {self.height} got {self.rows_written} rows")
        self._chunk(b"IDAT", self._zlib.flush())
        self._chunk(b"IEND", b"")

    def _chunk(self, kind: bytes, data: bytes) -> None:
        self.fh.write(struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data)))


def _paeth_filtered(rows: np.ndarray, previous: np.ndarray, bpp: int) -> np.ndarray:
    """Rows with PNG filter type 4 (Paeth) applied, each prefixed by its filter byte."""
    cur = rows.astype(np.int16)
    up = np.vstack([previous[None].astype(np.int16), cur[:-1]])
    left = np.zeros_like(cur)
    left[:, bpp:] = cur[:, :-bpp]
    up_left = np.zeros_like(cur)
    up_left[:, bpp:] = up[:, :-bpp]
    p = left + up - up_left
    pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - up_left)
    predictor = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, up_left))
    out = np.empty((len(rows), rows.shape[1] + 1), np.uint8)
    out[:, 0] = 4
    out[:, 1:] = (cur - predictor).astype(np.uint8)  # modulo 256, as the spec says
    return out
