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
MAX_FINGERPRINT_NAME_CHARS = 1000  # a module's class or a parameter's name in an architecture fingerprint; longer
#                                    ones are hashed (YOLOv8x's longest: 39)
MAX_FINGERPRINT_BYTES = 16 * MiB  # names and shapes hashed for one architecture fingerprint (YOLOv8x: 48 KB)

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

# `compare`: what reports, a sweep's index (sweep.json) and its studies' records (study.json) may make it read,
# print, write and draw. Reports are read whole (MAX_REPORT_BYTES, report.schema's shape check); an index or a
# study record is JSON of at most MAX_REPORT_BYTES too.
MAX_SWEEP_STUDIES = 10_000  # studies in a sweep's index: the most a sweep plans (sweep.spec.MAX_STUDIES); beyond,
#                             the index is refused
MAX_STUDY_MODELS = 10_000  # models a study record lists: the most a report's study section may name
#                            (report.schema NAMES); beyond, that study is not compared
MAX_SWEEP_REPORTS = 100_000  # model results `compare --sweep` reads in all (10,000 studies of 10 models); the
#                              studies beyond are named as not compared. Each report file is read once, however
#                              many names or links lead to it
MAX_RECORD_CONTAINERS = 4_000_000  # lists and objects in a sweep index or a study record (a study keeps one list a
#                                    round, its turn order: 2,000,000 rounds fit in MAX_REPORT_BYTES), where a
#                                    report may hold 200,000; values: a report's bound (16,000,000). 128 MiB of empty
#                                    lists would take 3 GB once parsed
MAX_SHOWN_CHARS = 200  # a name or value from a file, as printed or written into a table: the longest model name
#                        detbench accepts (names.MAX_NAME_BYTES); a longer one keeps its start, then "…#" and 16
#                        hex digits of its SHA-256
MAX_SHOWN_TEXT_CHARS = 1000  # a sentence from a file (a report's warning, a study's failure reason)
MAX_PLOT_LABEL_CHARS = 40  # a name or value drawn in a plot
MAX_PLOT_INCHES = 30.0  # every plot's width and height: at most 3600 x 3600 pixels at 120 dpi
MAX_PLOT_ITEMS = 60  # models (bars, points, lines), model x backend bars, or sweep cells in one plot (panel); beyond,
#                      the plot is not drawn, with a note (the tables have every row)
MAX_PLOT_PANELS = 8  # device kinds in the sweep plot, one panel each
MAX_PLOT_GROUPS = 50  # groups of comparable reports (and pivot matrices) plotted; beyond, a note
MAX_PIVOT_MODELS = 200  # rows of a `compare --pivot backend` matrix; beyond, the first ones, with a note
MAX_PIVOT_BACKENDS = 8  # its columns (detbench has 5 backends); beyond, the first ones, with a note
MAX_TABLE_CELLS = 1_000_000  # models x cells of a sweep's ranking-stability tables, all device kinds together;
#                              beyond, a table is left out with a note (the CSV has every result)
MAX_TERMINAL_BYTES = 16 * MiB  # what one `compare` prints of its tables; beyond, a note says where the rest is
# the whole child (imports, the model's load, the export) may take the base time plus EXPORT_FORWARDS forward
# passes of the batch, as the bounded model check timed one (batch 1, one thread). Measured on a busy 2-core
# machine, in the child: YOLOv8n to ONNX or OpenVINO 3-5 s; YOLOv8x at imgsz 640 12-22 s (its exporter does about
# 4 forward passes' work per image: 58 s at batch 8, one thread); a 0.2 KB YAML of 2000 1x1 convolutions passes
# the model check in seconds and its ONNX export runs 73 s. A TensorRT engine's builder times kernels for minutes.
EXPORT_TIMEOUT_S = 60.0
ENGINE_EXPORT_TIMEOUT_S = 1800.0
EXPORT_FORWARDS = 20
MAX_RESULTS_CSV_TOTAL_BYTES = 256 * MiB  # results.csv read by one `compare` in all (each file once); beyond, no mAP
MAX_TRAINED_SEEDS = 64  # seed*/ folders of one model whose mAP is averaged; beyond, no mAP
MAX_SEED_FOLDER_ENTRIES = 10_000  # entries of a model's run folder looked through for its seed*/ folders
MAX_SEED_CHECKPOINT_TOTAL_BYTES = 256 * MiB  # of the seeds' best.pt read by one `compare` to check their
#                                             architecture: the zip's directory and data.pkl of each (YOLOv8x: 250 KB;
#                                             at most MAX_PICKLE_BYTES each), never the tensor records
MAX_RESULTS_CSV_COLUMNS = 1000  # columns of a results.csv (Ultralytics writes 15)
