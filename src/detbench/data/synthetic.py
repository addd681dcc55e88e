"""A small synthetic detection dataset in the Ultralytics layout, made offline.

Each image is a noisy background with a few filled rectangles and ellipses;
the labels are their boxes in YOLO format. Image sizes vary, so letterboxing is
exercised as it is on real data.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import yaml

CLASS_NAMES = ["rectangle", "ellipse"]


def _draw_image(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, list[str]]:
    base = rng.integers(0, 256, size=3)
    image = np.clip(base + rng.normal(0, 25, size=(height, width, 3)), 0, 255).astype(np.uint8)
    labels = []
    for _ in range(int(rng.integers(1, 5))):
        box_w = int(rng.integers(width // 10, width // 2))
        box_h = int(rng.integers(height // 10, height // 2))
        x0 = int(rng.integers(0, width - box_w))
        y0 = int(rng.integers(0, height - box_h))
        color = tuple(int(c) for c in rng.integers(0, 256, size=3))
        cls = int(rng.integers(0, len(CLASS_NAMES)))
        if cls == 0:
            cv2.rectangle(image, (x0, y0), (x0 + box_w, y0 + box_h), color, thickness=-1)
        else:
            center = (x0 + box_w // 2, y0 + box_h // 2)
            cv2.ellipse(image, center, (box_w // 2, box_h // 2), 0, 0, 360, color, thickness=-1)
        cx, cy = (x0 + box_w / 2) / width, (y0 + box_h / 2) / height
        labels.append(f"{cls} {cx:.6f} {cy:.6f} {box_w / width:.6f} {box_h / height:.6f}")
    return image, labels


def make_dataset(root: str | Path, n_train: int = 16, n_val: int = 220, seed: int = 0,
                 sizes: tuple[tuple[int, int], ...] = ((240, 320), (320, 240), (360, 480), (256, 256))) -> Path:
    """Write images, labels and `data.yaml` under `root`; return the YAML's path."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for split, count in (("train", n_train), ("val", n_val)):
        image_dir = root / "images" / split
        label_dir = root / "labels" / split
        image_dir.mkdir(parents=True, exist_ok=True)
        label_dir.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            height, width = sizes[index % len(sizes)]
            image, labels = _draw_image(rng, height, width)
            stem = f"{split}_{index:05d}"
            cv2.imwrite(str(image_dir / f"{stem}.jpg"), image)
            (label_dir / f"{stem}.txt").write_text("\n".join(labels) + "\n")
    data_yaml = root / "data.yaml"
    data = {"path": str(root.resolve()), "train": "images/train", "val": "images/val",
            "names": dict(enumerate(CLASS_NAMES))}
    data_yaml.write_text(yaml.safe_dump(data, sort_keys=False))
    return data_yaml
