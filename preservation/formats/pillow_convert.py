"""Convert one raster image with Pillow; run as a subprocess by the ``pillow-*`` actions.

    python -m preservation.formats.pillow_convert SOURCE TARGET FORMAT [key=value ...]

Every frame is written (``save_all``) where the target format supports several;
options are passed to ``Image.save`` (integers where they look like integers). Exit
status 0 on success, 1 with the error on stderr otherwise.
"""

from __future__ import annotations

import sys
from typing import Any

MAX_PIXELS = 1_000_000_000  # Pillow's decompression-bomb guard, raised for large scans


def _value(text: str) -> Any:
    return int(text) if text.isdigit() else text


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    source, target, fmt, *options = argv
    kwargs = {k: _value(v) for k, _, v in (o.partition("=") for o in options)}
    try:
        with Image.open(source) as im:
            im.load()
            frames = getattr(im, "n_frames", 1)
            if frames > 1 and fmt in ("TIFF", "PNG", "GIF"):
                kwargs["save_all"] = True
            im.save(target, fmt, **kwargs)
    except Exception as e:  # any decoder or encoder error is the tool's failure
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
