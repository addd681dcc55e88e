"""Rectangular inputs (`--rect`): each image letterboxed to its own minimal rectangle, as Ultralytics' predictor does.

The predictor (`model.predict`, whose `rect` is on) letterboxes a batch whose original images all share one
shape to the smallest rectangle that holds the resized image and is a multiple of the model's stride (a 4:3
photo at imgsz 640 becomes 640x480, not 640x640); a batch of mixed shapes is letterboxed to the square. The
resized image itself is the same in both cases, only the padding differs.

So the cache keeps each image's resized, unpadded content (RGB, height x width x 3) in the top-left corner of a
square slot, with its content size and its original size. A batch is padded when it is served, outside the
timed region, with Ultralytics' own LetterBox applied to the content: the content already has the target scale
(ratio 1), so LetterBox only pads it, exactly as it would have padded the original.

The sizes decide the shapes the model is timed on, so a stored entry (`detbench.data.cache`) is used only where
they hold for the images themselves: each content size must be what LetterBox makes of its original size
(`sizes_hold`), and each original size must be the image's own, read from its header or, where the header
disagrees (an EXIF orientation), from decoding it.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from detbench.data.inputs import InputCache, array_sha256, check_host_memory, decode_each, letterbox_for
from detbench.limits import MAX_IMAGE_PIXELS


def predictor_rect(images: Sequence[np.ndarray], rect: bool) -> bool:
    """Whether the predictor letterboxes this batch to its minimal rectangle: `rect` and one shape for all."""
    return rect and len({image.shape for image in images}) == 1


def resized_content(image: np.ndarray, imgsz: int, stride: int) -> np.ndarray:
    """The image resized as LetterBox resizes it, without the padding (BGR in, BGR out)."""
    boxer = letterbox_for(imgsz, stride, rect=True)
    params = boxer.get_params({"img": image})
    boxed = boxer(image=image)
    width, height = params["new_unpad"]
    return boxed[params["top"]:params["top"] + height, params["left"]:params["left"] + width]


@dataclass
class RectInputCache(InputCache):
    """The cache of `--rect`: `images` is [N, imgsz, imgsz, 3] uint8 RGB, content top-left; `sizes` is
    [N, 4]: content height and width, original height and width."""

    sizes: np.ndarray | None = None
    imgsz: int = 640
    stride: int = 32

    def shapes(self, indices: Sequence[int]) -> tuple[list[np.ndarray], bool]:
        """The contents of `indices` (views) and whether the predictor would keep their minimal rectangle."""
        contents = [self.images[i, :int(self.sizes[i, 0]), :int(self.sizes[i, 1])].numpy() for i in indices]
        originals = {(int(self.sizes[i, 2]), int(self.sizes[i, 3])) for i in indices}
        return contents, len(originals) == 1

    def padded(self, indices: Sequence[int]) -> np.ndarray:
        """[B, 3, H, W] uint8 RGB, letterboxed as the predictor would letterbox this batch."""
        contents, same = self.shapes(indices)
        boxer = letterbox_for(self.imgsz, self.stride, rect=same)
        boxed = [boxer(image=np.ascontiguousarray(content)) for content in contents]
        return np.stack(boxed).transpose(0, 3, 1, 2)

    def batch(self, iteration: int, batch: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        chunk = torch.from_numpy(np.ascontiguousarray(self.padded(self.batch_indices(iteration, batch))))
        return chunk.to(device, non_blocking=True).to(dtype).div_(255.0)

    def batch_shape(self, iteration: int, batch: int) -> str:
        """The input shape ("HxW") of iteration `iteration`'s batch."""
        contents, same = self.shapes(self.batch_indices(iteration, batch))
        if not same:
            return f"{self.imgsz}x{self.imgsz}"
        params = letterbox_for(self.imgsz, self.stride, rect=True).get_params({"img": contents[0]})
        height = params["new_unpad"][1] + params["top"] + params["bottom"]
        width = params["new_unpad"][0] + params["left"] + params["right"]
        return f"{height}x{width}"

    def pass_shapes(self, batch: int) -> list[str]:
        """The input shape ("HxW") of each batch of one pass over the list, in order."""
        return [self.batch_shape(k, batch) for k in range(-(-len(self) // batch))]

    def shape_counts(self, batch: int) -> dict[str, int]:
        """How many batches of one pass over the list take each input shape ("HxW"), the most common first."""
        return dict(Counter(self.pass_shapes(batch)).most_common())

    def first_of_each_shape(self, batch: int) -> list[int]:
        """The first iteration of one pass over the list that has each input shape."""
        shapes = self.pass_shapes(batch)
        return sorted(shapes.index(shape) for shape in set(shapes))


def content_size(original_height: int, original_width: int, imgsz: int, stride: int) -> tuple[int, int]:
    """(height, width) LetterBox resizes an image of this size to, read from its own arithmetic."""
    params = letterbox_for(imgsz, stride, rect=True).get_params({"img": np.empty((original_height, original_width,
                                                                                 0), dtype=np.uint8)})
    width, height = params["new_unpad"]
    return int(height), int(width)


def sizes_hold(sizes: np.ndarray, imgsz: int, stride: int, max_pixels: int) -> bool:
    """Whether stored sizes are what LetterBox makes of the stored original sizes (each original at most
    `max_pixels`): a cache entry must not change the shapes the model is given. (That the original sizes are the
    images' own is checked against the files, by `detbench.data.cache`.)"""
    for height, width, original_height, original_width in sizes.tolist():
        if not (1 <= original_height and 1 <= original_width and original_height * original_width <= max_pixels):
            return False
        if (height, width) != content_size(original_height, original_width, imgsz, stride):
            return False
    return True


def rect_digest(slots: np.ndarray, sizes: np.ndarray) -> str:
    """The decoded hash of a rect cache: its slots and its sizes."""
    digest = hashlib.sha256(array_sha256(slots).encode())
    digest.update(np.ascontiguousarray(sizes, dtype=np.int64).tobytes())
    return digest.hexdigest()


def fill_slot(slots: np.ndarray, sizes: np.ndarray, index: int, image: np.ndarray, imgsz: int, stride: int) -> None:
    """Put one decoded BGR image's resized content, as RGB, into slot `index`, and record its sizes."""
    content = resized_content(image, imgsz, stride)
    height, width = content.shape[:2]
    slots[index, :height, :width] = content[:, :, ::-1]
    sizes[index] = (height, width, image.shape[0], image.shape[1])


def decode_rect_images(paths: Sequence[str | Path], imgsz: int, stride: int,
                       max_pixels: int = MAX_IMAGE_PIXELS) -> RectInputCache:
    """Read every image and keep its resized content for `--rect`; fail naming the unreadable ones."""
    check_host_memory(len(paths), imgsz)
    slots = np.zeros((len(paths), imgsz, imgsz, 3), dtype=np.uint8)
    sizes = np.zeros((len(paths), 4), dtype=np.int64)
    files_sha256 = decode_each(paths, lambda index, image: fill_slot(slots, sizes, index, image, imgsz, stride),
                               max_pixels)
    return RectInputCache(images=torch.from_numpy(slots), files_sha256=files_sha256,
                          decoded_sha256=rect_digest(slots, sizes), sizes=sizes, imgsz=imgsz, stride=stride)
