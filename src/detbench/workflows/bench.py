"""One model's benchmark, end to end: the steps of `detbench bench`.

1. Check the flags, the device and the output folder; hash the weights file
   and start its bounded inspection (`detbench.checkpoint.model_check`) in a child process.
2. Meanwhile import Ultralytics and set the threads; take the child's answer
   (params, GFLOPs, stride, the checkpoint's data YAML), then load and fuse
   the same bytes in this process.
3. Create or reuse the benchmark list; decode the inputs (cached).
4. Warm up and time; write the report atomically.
"""

from __future__ import annotations

import datetime as _dt
import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from detbench.backends.deploy import Deployed, deploy
from detbench.backends.export_child import ExportBounds, ExportSource
from detbench.backends.formats import PYTORCH, Format, check_format, split_format
from detbench.backends.parity import PARITY_BATCHES
from detbench.checkpoint.model_check import (
    CheckRequest,
    KnownCheck,
    ModelCheck,
    PendingCheck,
    count_and_fuse,
    start_model_check,
)
from detbench.config import BenchConfig
from detbench.data import cache as setup_cache
from detbench.data.benchmark_list import LIST_FILENAME, check_list_exists, obtain_list
from detbench.data.datasets import check_data_yaml
from detbench.data.rect import RectInputCache
from detbench.errors import DetbenchError, first_line
from detbench.files.space import MIN_FREE_BYTES, check_writable
from detbench.measure.devices import resolve_device
from detbench.measure.measure import measure
from detbench.measure.memory import current_rss_mib
from detbench.measure.modes import ExecutionMode, configure_backends
from detbench.measure.phases import PhaseClock, first_run_of_process
from detbench.measure.timing import Heartbeat, StopRule, Timings, run_timed_loop, stopping_section
from detbench.models.loading import LoadedModel, load_model, model_name_for, precheck_model, prepare_for_inference
from detbench.names import check_model_name
from detbench.report.model import (
    Complexity,
    Inputs,
    Latency,
    Memory,
    Metadata,
    Report,
    Samples,
    Settings,
    Statistics,
    Throughput,
)
from detbench.report.provenance import capture_environment, capture_settings
from detbench.report.schema import write_report
from detbench.stats import diagnostics as quality
from detbench.stats import summary as stats
from detbench.text import Echo, terminal_echo
from detbench.workflows.existing import refuse_replacing_other_settings

GFLOPS_METHOD = "ultralytics (thop MACs x 2), fused model, at imgsz"
LATENCY_SCOPE = "model forward only; batch already on the device and normalised"


def report_bytes_needed(cfg: BenchConfig) -> int:
    """A generous estimate of the report's size: every sample (and pipeline stage) at ~25 bytes, plus headroom."""
    samples = (cfg.iters + cfg.warmup) * (5 if cfg.pipeline else 2)
    return MIN_FREE_BYTES + 25 * samples


def resolve_data(cfg: BenchConfig, train_args: dict[str, Any]) -> tuple[str | None, bool]:
    """The data YAML: --data if given, else the checkpoint's train_args['data']; and whether it came from the flag."""
    if cfg.data:
        return cfg.data, True
    data = train_args.get("data")
    return (str(data), False) if data else (None, False)


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA out of memory, or a host allocation that failed in the forward pass."""
    return isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or (
        isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc))


@dataclass
class _Run:
    """One run's settings and the facts established along the way."""

    cfg: BenchConfig
    echo: Echo
    argv: list[str] | None
    device: torch.device
    mode: ExecutionMode
    out_dir: Path
    name: str
    clock: PhaseClock
    notes: list[str] = field(default_factory=list)
    backend: Format | None = None  # --format other than pytorch
    data: str | None = None  # the data YAML, once resolved (`resolve_data`)

    @property
    def command(self) -> list[str]:
        return self.argv if self.argv is not None else sys.argv

    def note(self, text: str, kind: str = "note") -> None:
        self.notes.append(text)
        self.echo(f"  {kind}: {text}")


@dataclass
class _Model:
    loaded: LoadedModel
    model: torch.nn.Module  # fused, eval, no gradients
    numbers: ModelCheck
    check_reused: bool = False  # the bounded check was an earlier study worker's, of the same bytes
    rss_mib: float | None = None  # resident memory that loading and fusing it here added
    deployed: Deployed | None = None  # --format: the exported model in its runtime


def record_oom(run: _Run, imgsz: int, unsafe_load: bool, model_complexity: Complexity,
               exc: BaseException) -> DetbenchError:
    """Write `{out}/{name}.json` with status "oom" (and the batch and imgsz); return the error to stop with."""
    cfg = run.cfg
    what = f"out of memory at --batch {cfg.batch}, imgsz {imgsz} on {run.device}"
    detail = first_line(exc, 300)
    metadata = Metadata(model_name=run.name, weights=cfg.weights, imgsz=imgsz, imgsz_requested=cfg.imgsz,
                        batch=cfg.batch, device=str(run.device), warmup=cfg.warmup, iters=0,
                        iters_requested=cfg.iters, timestamp=_now(), unsafe_load=unsafe_load)  # no timed run
    report = Report(status="oom", error=f"{what}: {detail}", metadata=metadata, model_complexity=model_complexity,
                    config=cfg.to_dict(), command=run.command, cwd=os.getcwd())
    path = write_report(report, run.out_dir / f"{run.name}.json")
    return DetbenchError(f"{what}; wrote {path} with status \"oom\"; try a smaller --batch or --imgsz")


def default_name(cfg: BenchConfig) -> str:
    """The report's name without --name: the run folder's (or file's) name, with @FORMAT for a backend other than
    PyTorch eager (`baseline@onnx`), so that it never takes the PyTorch run's report."""
    name = model_name_for(cfg.weights)
    return name if cfg.format == PYTORCH else f"{name}@{cfg.format}"


def _start(cfg: BenchConfig, echo: Echo, argv: list[str] | None, known: KnownCheck | None,
           replacing: bool = True) -> tuple[_Run, PendingCheck | KnownCheck | None, str | None]:
    """Flags, device, output folder and name checked (with `replacing`, also that OUT/NAME.json is not a report
    of other settings); the weights hashed and their inspection started (or taken from `known`, when it covers
    these bytes)."""
    clock, first_run = PhaseClock(), first_run_of_process()
    device = resolve_device(cfg.device)
    mode = ExecutionMode(half=cfg.half, amp=cfg.amp, channels_last=cfg.channels_last,
                         cudnn_benchmark=cfg.cudnn_benchmark, cuda_graph=cfg.cuda_graph, tf32=cfg.tf32)
    mode.check(device)
    backend = check_format(cfg.format, device.type, vars(cfg))  # a missing extra fails now, before the model loads
    name = check_model_name(cfg.name, f"--name {cfg.name}") if cfg.name else check_model_name(
        default_name(cfg), f"--weights {cfg.weights}", "pass --name NAME")
    named_format = split_format(name)[1]
    if named_format is not None and named_format != cfg.format:
        raise DetbenchError(f"--name {name}: names the {named_format} backend but --format is {cfg.format}; pass "
                            f"--format {named_format} or another --name")
    out_dir = Path(cfg.out)
    check_writable(out_dir, report_bytes_needed(cfg))
    if cfg.use_benchmark_list:  # a missing list or a wrong --data fails now, not after the model has loaded
        check_list_exists(Path(cfg.list_path) if cfg.list_path else out_dir / LIST_FILENAME)
    elif cfg.data:
        check_data_yaml(cfg.data)
    sha256 = precheck_model(cfg.weights, cfg.plugins, cfg.unsafe_load)
    if replacing:
        refuse_replacing_other_settings(out_dir / f"{name}.json", cfg, str(device), sha256)
    pending = None if cfg.unsafe_load else start_model_check(CheckRequest(
        weights=cfg.weights, imgsz=cfg.imgsz, sha256=sha256, plugins=list(cfg.plugins),
        timeout_s=cfg.load_timeout, memory_bytes=int(cfg.load_memory_mb * 2**20)), known)
    try:
        import ultralytics  # noqa: F401  (importing it changes the thread settings, so set ours after)
    except BaseException:
        if pending is not None:
            pending.cancel()
        raise
    clock.mark("import", since_process_start=first_run)
    torch.set_num_threads(cfg.threads)
    echo(f"detbench bench: {name} on {device} ({torch.get_num_threads()} CPU threads), imgsz {cfg.imgsz}, "
         f"batch {cfg.batch}, warmup {cfg.warmup}, iters {cfg.iters}")
    return _Run(cfg, echo, argv, device, mode, out_dir, name, clock, backend=backend), pending, sha256


def _prepare_model(run: _Run, pending: PendingCheck | KnownCheck | None, sha256: str | None,
                   known: KnownCheck | None) -> _Model:
    """The child's measurements, then the same bytes loaded and fused here (in-process for --unsafe-load)."""
    cfg = run.cfg
    rss_before = current_rss_mib(settle=True)
    try:
        if pending is None:
            loaded = load_model(cfg.weights, unsafe_load=True, plugins=cfg.plugins)
            fused, numbers = count_and_fuse(loaded, cfg.imgsz)
        else:
            numbers = pending.result()
            if known is not None and isinstance(pending, PendingCheck):
                known.remember(pending.request, numbers)
            loaded = load_model(cfg.weights, plugins=cfg.plugins, expected_sha256=sha256)
            fused = prepare_for_inference(loaded.model)
    finally:
        if pending is not None:
            pending.cancel()
    model_rss = max(0.0, current_rss_mib(settle=True) - rss_before)  # weights and buffers, loaded and fused here
    run.clock.mark("load")
    for note in loaded.notes:
        run.note(note)
    if loaded.unsafe_load:
        run.note("checkpoint loaded with --unsafe-load: a full pickle load, which runs any code inside it",
                 "warning")
    check_time_budget(cfg, numbers)
    return _Model(loaded, fused, numbers, isinstance(pending, KnownCheck), model_rss)


def deploy_for_run(run: _Run, model: _Model, inputs) -> Deployed:
    """--format: the model exported in a bounded child process (or found in the private export cache), opened in
    its runtime, checked for parity on the first batches of the list. Only an export that depends on the
    checkpoint's bytes alone is cached (not a model built from a YAML, not with --plugin or --unsafe-load)."""
    cfg = run.cfg
    batches = [inputs.batch(i, cfg.batch, run.device, torch.float32) for i in range(PARITY_BATCHES)]
    bounds = ExportBounds(cfg.export_timeout, int(cfg.load_memory_mb * 2**20), model.numbers.forward_s)
    configure_backends(run.mode, run.device)  # the PyTorch reference of the parity check runs with the run's TF32
    try:
        deployed = deploy(run.backend, ExportSource.of(model.loaded, cfg.plugins), model.model,
                                model.numbers.imgsz, cfg.batch, cfg.threads, batches, run.echo, device=run.device,
                                half=cfg.half, bounds=bounds,
                                tf32=cfg.tf32 if cfg.tf32 is not None else bool(torch.backends.cudnn.allow_tf32))
    except DetbenchError:
        raise
    except Exception as exc:
        raise _failed_run(cfg, f"{run.backend.runtime} (--format {run.backend.name})", exc) from exc
    run.note(f"params and GFLOPs are those of the PyTorch model; the latency is {run.backend.runtime}'s")
    for note in deployed.notes:
        run.note(note)
    if run.device.type == "cuda":
        run.note(f"GPU memory: torch's allocator does not see {run.backend.runtime}'s own allocations; "
                 f"settings.backend.runtime_device_MB is what opening it took on the device (driver-wide)")
    run.clock.mark("export")
    return deployed


def check_time_budget(cfg: BenchConfig, numbers: ModelCheck) -> None:
    """Refuse a run whose warm-up and timed loop would outlast --time-budget, judged before they start.

    The bounded check times one forward pass at batch 1 on one thread; the run's threads may make it faster,
    so the estimate divides by them (a lower bound: the refusal never stops a run that would fit).
    """
    if numbers.forward_s is None:
        return
    forwards = (cfg.warmup + cfg.iters) * (2 if cfg.pipeline else 1)
    estimate = numbers.forward_s * cfg.batch * forwards / max(cfg.threads, 1) + cfg.min_time
    if estimate > cfg.time_budget:
        raise DetbenchError(f"--weights {cfg.weights}: one forward pass took {numbers.forward_s:.3g} s, so "
                            f"{forwards} of them at --batch {cfg.batch} need at least {estimate / 60:.0f} min, beyond "
                            f"--time-budget {cfg.time_budget:g} s; lower --iters/--warmup or raise --time-budget")


def _prepare_inputs(run: _Run, model: _Model):
    """The shared benchmark list (created or checked) and its decoded, letterboxed images."""
    cfg = run.cfg
    run.data, data_from_flag = resolve_data(cfg, model.loaded.train_args)
    list_path = Path(cfg.list_path) if cfg.list_path else run.out_dir / LIST_FILENAME
    if run.data and not data_from_flag and not Path(run.data).is_file() and not list_path.exists():
        raise DetbenchError(f"--weights {cfg.weights}: the checkpoint's training data {run.data} "
                            f"(train_args['data']), resolved against {Path.cwd()}, is not a file here; pass "
                            f"--data DATA.yaml")
    outcome = obtain_list(list_path, run.data, cfg.benchmark_size, cfg.seed, cfg.use_benchmark_list, data_from_flag,
                          max_pixels=cfg.max_image_pixels)
    run.clock.mark("list")
    run.echo(f"✓ {'created' if outcome.created else 'loaded'} benchmark list: {outcome.path} "
             f"({len(outcome.blist.paths)} images)")
    if outcome.note:
        run.note(outcome.note)
    loaded, numbers = model.loaded, model.numbers
    run.echo(f"✓ model loaded ({loaded.kind}: {loaded.path})")
    if numbers.imgsz != cfg.imgsz:
        run.note(f"imgsz {cfg.imgsz} is not a multiple of stride {numbers.stride}: using {numbers.imgsz}")
    run.echo(f"✓ params: {numbers.params:,}")
    run.echo(f"✓ GFLOPs: {numbers.gflops:.2f}")
    if cfg.rect:
        run.note(f"GFLOPs are counted at the square {numbers.imgsz}x{numbers.imgsz}; --rect inputs are smaller "
                 f"(their shapes: inputs.shapes)")
    cache_dir = setup_cache.cache_dir_for(list_path)
    cache_note = setup_cache.cache_problem(cache_dir)
    if cache_note:
        run.note(cache_note)
    if cfg.pipeline:  # the decoded originals the pipeline keeps count too: refuse before any timing
        # imported here, not at the top: loads torch, OpenCV, NVML, numpy, which only this path needs
        from detbench.data.inputs import check_host_memory
        from detbench.measure.pipeline import original_pixels

        check_host_memory(len(outcome.blist.paths), numbers.imgsz,
                          original_pixels(outcome.blist.paths, cfg.max_image_pixels))
    inputs, inputs_cached = setup_cache.cached_inputs(cache_dir, outcome.blist.paths, numbers.imgsz,
                                                      max_pixels=cfg.max_image_pixels,
                                                      rect_stride=numbers.stride if cfg.rect else None, note=run.note)
    run.clock.mark("decode")
    return outcome, inputs, {"dir": str(cache_dir), "inputs_reused": inputs_cached}


def _measure(run: _Run, model: _Model, inputs, stop: StopRule, loop: Callable[..., Timings] | None):
    cfg, numbers = run.cfg, model.numbers
    try:
        deployed = model.deployed
        measurement = measure(model.model, inputs, cfg.batch, run.device, run.mode, cfg.warmup, cfg.iters,
                              loop=loop or functools.partial(run_timed_loop, heartbeat=Heartbeat(run.echo)),
                              watch_host=loop is None, shared_process=loop is not None,
                              model_rss_mib=deployed.runtime_rss_mib if deployed else model.rss_mib,
                              stop=stop, forward=deployed.runtime.forward if deployed else None,
                              weights_override_mib=deployed.size_mib if deployed else None)
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise _failed_run(cfg, "the timed loop", exc) from exc
        raise record_oom(run, numbers.imgsz, model.loaded.unsafe_load, _complexity(numbers), exc) from exc
    timings = measurement.timings
    if measurement.shape_warmups:
        run.note(f"--rect: {measurement.shape_warmups} untimed forward(s), one per input shape of the list, ran "
                 f"before the warm-up, so that no shape is first seen in the timed loop")
    run.clock.mark_parts({"warmup": timings.warmup_s, "timed": timings.timed_s}, rest="device_setup")
    for warning in measurement.warnings:
        run.echo(f"  warning: {warning}")
    on_cuda = run.device.type == "cuda"
    latency = Latency.from_values(timings.latency_ms, timings.host_ms if on_cuda else None, timer=timings.timer,
                                  scope=LATENCY_SCOPE, percentile_method=f"numpy {stats.PERCENTILE_METHOD}",
                                  std_ddof=1)
    run.echo(f"✓ latency (mean): {latency.mean_ms:.2f} ms")
    statistics = Statistics.from_samples(timings.latency_ms, timings.host_ms if on_cuda else None,
                                         timings.enqueue_ms if on_cuda else None)
    run.echo(f"  median {latency.median_ms:.2f} ms, 95% CI {quality.format_ci(statistics.median_ci95_ms)}; "
             f"{len(timings.latency_ms)} samples, stopped by {timings.stop_reason}")
    for warning in statistics.warnings:
        run.echo(f"  warning: {warning}")
    return measurement, latency, statistics


def _failed_run(cfg: BenchConfig, where: str, exc: BaseException) -> DetbenchError:
    """A model that loaded and ran once but fails in the run itself: one line, nothing written."""
    detail = first_line(exc)
    return DetbenchError(f"--weights {cfg.weights}: the model fails in {where} at --batch {cfg.batch} "
                         f"({type(exc).__name__}: {detail}); nothing was written; check the model or try --batch 1")


def _pipeline(run: _Run, model: _Model, outcome, inputs, stop: StopRule):
    if not run.cfg.pipeline:
        return None, None, []
    # imported here, not at the top: loads torch, OpenCV, NVML, numpy, which only this path needs
    from detbench.measure.pipeline import measure_pipeline

    try:
        section, samples = measure_pipeline(model.model, run.mode, run.device, outcome.blist.paths,
                                            inputs.files_sha256, model.numbers.imgsz, run.cfg.batch, run.cfg.warmup,
                                            stop, max_pixels=run.cfg.max_image_pixels, rect=run.cfg.rect,
                                            stride=model.numbers.stride,
                                            forward=model.deployed.runtime.forward if model.deployed else None)
    except DetbenchError:
        raise
    except Exception as exc:
        raise _failed_run(run.cfg, "the pipeline (preprocess, inference, NMS)", exc) from exc
    run.echo(f"✓ pipeline (median): preprocess {section.preprocess.median_ms:.2f} + inference "
             f"{section.inference.median_ms:.2f} + postprocess {section.postprocess.median_ms:.2f}"
             f" ms; total {section.total.median_ms:.2f} ms")
    warned = section.warnings()
    for warning in warned:
        run.echo(f"  warning: {warning}")
    run.clock.mark("pipeline")
    return section, samples, warned


def run_bench(cfg: BenchConfig, echo: Echo = print, argv: list[str] | None = None, write: bool = True,
              loop: Callable[..., Timings] | None = None,
              known: KnownCheck | None = None) -> tuple[Report, Path | None]:
    """Benchmark one model; write `{out}/{name}.json` (unless not `write`); return the report and its path.

    `loop` replaces the timed loop (`measure.timing.run_timed_loop`): a study's worker serves turns with it.
    `known`: a bounded check of the same bytes already made, used instead of a new one; an empty or other one
    is filled with this run's check (a study passes it from one generation of workers to the next).
    """
    run, pending, sha256 = _start(cfg, terminal_echo(echo), argv, known, replacing=write)
    model = _prepare_model(run, pending, sha256, known)
    outcome, inputs, cache = _prepare_inputs(run, model)
    if run.backend is not None:
        model.deployed = deploy_for_run(run, model, inputs)
    stop = StopRule(cfg.iters, cfg.min_time, cfg.target_ci, cfg.max_time)
    measurement, latency, statistics = _measure(run, model, inputs, stop, loop)
    pipeline, pipeline_samples, pipeline_warned = _pipeline(run, model, outcome, inputs, stop)
    report = _report(run, model, outcome, inputs, cache, stop, measurement, latency, statistics,
                     (pipeline, pipeline_samples, pipeline_warned))
    run.clock.mark("report")
    report.timing_phases_s = run.clock.report()
    if not write:
        return report, None
    path = _write(report, run.out_dir / f"{run.name}.json")
    echo(f"✓ saved: {path}")
    return report, path


def _write(report: Report, path: Path) -> Path:
    try:
        return write_report(report, path)
    except OSError as exc:
        raise DetbenchError(f"--out {path.parent}: writing {path.name} failed ({exc.strerror}); nothing was written; "
                            f"free space or choose another --out, then run again") from exc


def _metadata(run: _Run, model: _Model, outcome, iterations: int) -> Metadata:
    cfg, numbers, loaded = run.cfg, model.numbers, model.loaded
    return Metadata(
        model_name=run.name, weights=cfg.weights, weights_sha256=loaded.sha256, model_source=loaded.kind,
        imgsz=numbers.imgsz, imgsz_requested=cfg.imgsz, batch=cfg.batch, device=str(run.device),
        warmup=cfg.warmup, iters=iterations, iters_requested=cfg.iters, timestamp=_now(),
        benchmark_list=str(outcome.path),
        benchmark_size=len(outcome.blist.paths), benchmark_size_requested=cfg.benchmark_size,
        seed=outcome.blist.seed, data=run.data, unsafe_load=loaded.unsafe_load)


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _complexity(numbers: ModelCheck) -> Complexity:
    return Complexity(params=numbers.params, params_M=round(numbers.params / 1e6, 3),
                      params_fused=numbers.params_fused, gflops=numbers.gflops, gflops_unfused=numbers.gflops_unfused,
                      gflops_method=GFLOPS_METHOD)


def _inputs(outcome, inputs, imgsz: int, batch: int) -> Inputs:
    blist = outcome.blist
    rect = isinstance(inputs, RectInputCache)
    letterbox = (f"--rect: each batch to its minimal rectangle within {imgsz}x{imgsz}, a multiple of stride "
                 f"{inputs.stride} (square where its images differ in shape), as Ultralytics' predictor; centred, "
                 f"pad 114, RGB" if rect else f"{imgsz}x{imgsz}, centred, pad 114, RGB")
    return Inputs(list_sha256=blist.sha256, files_sha256=inputs.files_sha256, decoded_sha256=inputs.decoded_sha256,
                  n_images=len(inputs), population_size=blist.population_size,
                  population_sha256=blist.population_sha256, truncated=blist.truncated, letterbox=letterbox,
                  shapes=inputs.shape_counts(batch) if rect else None)


def _report(run: _Run, model: _Model, outcome, inputs, cache: dict[str, Any], stop: StopRule, measurement,
            latency: Latency, statistics: Statistics, pipeline_parts) -> Report:
    cfg, numbers, loaded = run.cfg, model.numbers, model.loaded
    timings, on_cuda = measurement.timings, run.device.type == "cuda"
    pipeline, pipeline_samples, pipeline_warned = pipeline_parts
    return Report(
        metadata=_metadata(run, model, outcome, len(timings.latency_ms)),
        model_complexity=_complexity(numbers),
        latency=latency,
        throughput=Throughput.from_latency(cfg.batch, latency.mean_ms, latency.p50_ms),
        memory=Memory.from_dict(measurement.memory),
        gpu=measurement.gpu,
        host_load=measurement.host_load,
        warnings=(measurement.warnings + statistics.warnings + pipeline_warned
                  + (model.deployed.warnings if model.deployed else [])),
        statistics=statistics,
        stopping=stopping_section(stop, timings),
        pipeline=pipeline,
        setup_cache=cache,
        model_check={"bounded_child": not loaded.unsafe_load, "seconds": numbers.seconds,
                     "peak_rss_MB": numbers.peak_rss_MB, "modules": numbers.modules,
                     "reused_from_earlier_worker": model.check_reused},
        inputs=_inputs(outcome, inputs, numbers.imgsz, cfg.batch),
        settings=Settings.from_dict({**capture_settings(run.device, cfg.threads, run.mode),
                                     "backend": model.deployed.record() if model.deployed else None}),
        parity=model.deployed.parity if model.deployed else None,
        config=cfg.to_dict(),
        environment=capture_environment(run.device),
        command=run.command,
        cwd=os.getcwd(),
        notes=run.notes,
        samples=Samples(latency_ms=timings.latency_ms, host_ms=timings.host_ms if on_cuda else None,
                        enqueue_ms=timings.enqueue_ms if on_cuda else None,
                        warmup_ms=timings.warmup_ms, pipeline_ms=pipeline_samples),
    )
