"""Bounds on every input detbench reads, so that a hostile file ends a run with an error, not a hang.

Each bound is far above what a genuine file of its kind needs; the numbers in
the comments are measured on real files. The README's Security section quotes
these values.
"""

from __future__ import annotations

MiB = 2**20
GiB = 2**30

# whole files read into memory
MAX_CHECKPOINT_BYTES = 4 * GiB  # YOLOv8x saved in fp32: 137 MB
MAX_YAML_BYTES = 4 * MiB  # data and model YAMLs: a few KB
MAX_LIST_BYTES = 64 * MiB  # a list of 1,000,000 paths of 60 characters
MAX_REPORT_BYTES = 128 * MiB  # a report with 1,000,000 samples: about 40 MB
MAX_IMAGE_BYTES = 256 * MiB  # a 100-megapixel PNG is about 150 MB
MAX_SMALL_FILE_BYTES = 16 * MiB  # results.csv, args.yaml, cache indexes
MAX_PATH_CHARS = 4096  # PATH_MAX on Linux

# images: decoded size is checked from the header, before decoding
MAX_IMAGE_PIXELS = 8192 * 8192  # 67 megapixels, 192 MiB as 8-bit RGB; raise with --max-image-pixels

# checkpoints: the zip archive and its pickle (YOLOv8x: 605 entries, pickle 147 KB, 60,371 opcodes)
MAX_ZIP_ENTRIES = 100_000
MAX_PICKLE_BYTES = 16 * MiB
MAX_PICKLE_OPCODES = 1_000_000
MAX_PICKLE_GLOBALS = 2_000  # distinct classes and functions a pickle names (YOLOv10: 29)
MAX_PICKLE_DEPTH = 200  # nesting of containers and objects in the pickle
MAX_EXPANDED_OBJECTS = 5_000_000  # objects when each shared reference counts every time it is used (YOLOv8x: 50,114)
MAX_TENSOR_DIMS = 16
ZIP_SLACK_BYTES = 64 * MiB  # inflated entries may exceed the file's size by at most this much
MAX_MODULES = 100_000

# the bounded child process that loads, checks and measures an untrusted model before detbench uses it
LOAD_TIMEOUT_S = 60.0
LOAD_MEMORY_BYTES = 4 * GiB  # on top of the interpreter with torch and Ultralytics imported
# a run whose warm-up and timed loop would take longer, judged from the bounded check's forward pass, is refused
RUN_TIME_BUDGET_S = 3600.0

# an interleaved study (`detbench ablate`): round indices, workers and looks a report may list
MAX_STUDY_ROUNDS = 10**7
MAX_WORKERS_PER_MODEL = 16  # at once (--workers-per-model)
MAX_BIAS_PROBE = 1000  # forwards of one bias-probe run (--bias-probe)
MAX_STUDY_GENERATIONS = 6  # looks, each after which the workers may be replaced by fresh ones
MAX_STUDY_WORKERS = MAX_WORKERS_PER_MODEL * MAX_STUDY_GENERATIONS  # worker processes of one model over a study
MAX_STUDY_LOOKS = 20
