"""Seeded generators of test and benchmark transfers.

Used by scripts/quickstart (a small digitised-records transfer), by the benchmarks
(large, small, scans, huge-count) and available to tests. Everything is generated from
a seed, so two runs produce the same bytes.
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

SHEET_COLUMNS = [
    "档号",
    "全宗号",
    "年度",
    "保管期限",
    "机构或问题",
    "件号",
    "题名",
    "责任者",
    "日期",
    "文件编号",
    "密级",
    "保密期限",
    "页数",
    "开放状态",
    "备注",
]
TITLES = [
    "关于城市规划的请示",
    "年度工作总结",
    "会议纪要",
    "财务报告",
    "人事任免通知",
    "档案移交清单",
]
CREATORS = ["市规划局", "市档案局", "市财政局", "市人民政府办公室"]


def make_scans(
    root: Path,
    items: int = 3,
    pages_per_item: int = 2,
    size: tuple[int, int] = (400, 560),
    seed: int = 1,
    fonds: str = "Z109",
    year: int = 2011,
    page_bytes: tuple[int, int] | None = None,
) -> tuple[Path, Path]:
    """Digitised pages ``<档号>-<page>.tif`` (300 dpi greyscale TIFF) plus their sheet.

    ``page_bytes``: instead of ``size``, pages 2,480 pixels wide (A4 at 300 dpi) whose
    height is drawn so that each image holds between the two numbers of bytes."""
    from PIL import Image

    rng = random.Random(seed)
    transfer = root / f"{fonds}-WS-{year}"
    transfer.mkdir(parents=True, exist_ok=True)
    sheet = root / f"{fonds}-WS-{year}.csv"
    with sheet.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(SHEET_COLUMNS)
        for item in range(1, items + 1):
            code = f"{fonds}-WS·{year}-Y-BGS-{item:04d}"
            for page in range(1, pages_per_item + 1):
                dims = size
                if page_bytes is not None:
                    dims = (2480, rng.randint(page_bytes[0] // 2480, page_bytes[1] // 2480))
                img = Image.frombytes("L", dims, rng.randbytes(dims[0] * dims[1]))
                img.save(transfer / f"{code}-{page:04d}.tif", dpi=(300, 300))
            month = rng.randint(1, 12)
            w.writerow(
                [
                    code,
                    fonds,
                    str(year),
                    "永久",
                    "BGS",
                    f"{item:04d}",
                    f"{rng.choice(TITLES)}（{item}）",
                    rng.choice(CREATORS),
                    f"{year}{month:02d}{rng.randint(1, 28):02d}",
                    f"办〔{year}〕{item}号",
                    "非密",
                    "",
                    str(pages_per_item),
                    "开放",
                    "",
                ]
            )
    return transfer, sheet


def make_files(
    root: Path, count: int, min_size: int, max_size: int, seed: int = 2, fanout: int = 100
) -> Path:
    """``count`` files of random bytes in nested folders (``fanout`` files per folder)."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    block = 1024 * 1024
    for i in range(count):
        folder = root / f"d{i // (fanout * fanout):03d}" / f"d{(i // fanout) % fanout:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        size = rng.randint(min_size, max_size)
        with (folder / f"f{i:07d}.bin").open("wb") as f:
            left = size
            while left > 0:
                n = min(block, left)
                f.write(rng.randbytes(n))
                left -= n
    return root


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("kind", choices=["scans", "large", "small", "huge-count"])
    p.add_argument("dest", type=Path)
    p.add_argument("--items", type=int, default=3)
    p.add_argument("--pages", type=int, default=2)
    p.add_argument("--count", type=int, default=None)
    args = p.parse_args()
    if args.kind == "scans":
        transfer, sheet = make_scans(args.dest, args.items, args.pages)
        print(transfer)
        print(sheet)
    elif args.kind == "large":
        print(make_files(args.dest, args.count or 8, 256 * 2**20, 256 * 2**20))
    elif args.kind == "small":
        print(make_files(args.dest, args.count or 50_000, 1024, 16 * 1024))
    else:
        print(make_files(args.dest, args.count or 200_000, 1, 64, fanout=200))


if __name__ == "__main__":
    main()
