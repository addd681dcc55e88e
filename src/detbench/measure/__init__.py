"""Running a model: devices, execution modes, the timed loop, memory, NVML, the pipeline."""
