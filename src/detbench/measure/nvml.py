"""Optional NVML readings: GPU name, driver, clocks, temperature, power, throttling, energy, other processes.

Everything here is best-effort: a machine without NVML (no NVIDIA driver, no
nvidia-ml-py, a non-NVIDIA device) gets nulls and a note, never a crash.
Energy per image comes from the board's total-energy counter (millijoules,
Volta and newer) read before and after the timed loop, so it covers the whole
loop's wall time, host gaps between iterations included, divided by the
number of images processed.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

THROTTLE_REASONS = {
    "GpuIdle": 0x1,
    "ApplicationsClocksSetting": 0x2,
    "SwPowerCap": 0x4,
    "HwSlowdown": 0x8,
    "SyncBoost": 0x10,
    "SwThermalSlowdown": 0x20,
    "HwThermalSlowdown": 0x40,
    "HwPowerBrakeSlowdown": 0x80,
    "DisplayClockSetting": 0x100,
}
BENIGN_REASONS = {"GpuIdle", "ApplicationsClocksSetting", "SyncBoost", "DisplayClockSetting"}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class GpuMonitor:
    """NVML handle for one CUDA device; `available` is False (with `note`) when NVML cannot be used."""

    def __init__(self, cuda_index: int, pci_bus_id: str | None = None, nvml: Any = None) -> None:
        self.available, self.note, self.handle = False, None, None
        try:
            if nvml is None:
                # imported here, not at the top: loads NVML, which only this path needs
                import pynvml as nvml
            self.nvml = nvml
            nvml.nvmlInit()
            if pci_bus_id:
                self.handle = nvml.nvmlDeviceGetHandleByPciBusId(pci_bus_id)
            else:
                self.handle = nvml.nvmlDeviceGetHandleByIndex(cuda_index)
            self.available = True
        except Exception as exc:  # no library, no driver, no device: all mean "no NVML"
            self.note = f"NVML unavailable ({type(exc).__name__}: {exc})"

    def _call(self, name: str, *args: Any) -> Any:
        try:
            return getattr(self.nvml, name)(self.handle, *args)
        except Exception:
            return None

    def static_info(self) -> dict[str, Any]:
        if not self.available:
            return {"nvml": False, "note": self.note}
        driver = None
        with contextlib.suppress(Exception):  # no version to read: null
            driver = _text(self.nvml.nvmlSystemGetDriverVersion())
        name = self._call("nvmlDeviceGetName")
        return {"nvml": True, "name": _text(name) if name is not None else None, "driver": driver}

    def snapshot(self) -> dict[str, Any]:
        """Clocks, temperature, power, memory used (CUDA context included), throttling, energy counter."""
        if not self.available:
            return {}
        nvml = self.nvml
        memory = self._call("nvmlDeviceGetMemoryInfo")
        reasons_mask = self._call("nvmlDeviceGetCurrentClocksEventReasons")
        if reasons_mask is None:
            reasons_mask = self._call("nvmlDeviceGetCurrentClocksThrottleReasons")
        power = self._call("nvmlDeviceGetPowerUsage")
        return {
            "sm_clock_MHz": self._call("nvmlDeviceGetClockInfo", getattr(nvml, "NVML_CLOCK_SM", 1)),
            "mem_clock_MHz": self._call("nvmlDeviceGetClockInfo", getattr(nvml, "NVML_CLOCK_MEM", 2)),
            "temperature_C": self._call("nvmlDeviceGetTemperature", getattr(nvml, "NVML_TEMPERATURE_GPU", 0)),
            "power_W": power / 1000.0 if power is not None else None,
            "device_used_MB": memory.used / 1024**2 if memory is not None else None,
            "throttle_reasons": decode_reasons(reasons_mask),
            "energy_mJ": self._call("nvmlDeviceGetTotalEnergyConsumption"),
        }

    def other_processes(self) -> list[int]:
        """PIDs of other processes with a compute context on this GPU (a busy GPU skews latency)."""
        if not self.available:
            return []
        processes = self._call("nvmlDeviceGetComputeRunningProcesses") or []
        return sorted({int(p.pid) for p in processes if int(p.pid) != os.getpid()})


def decode_reasons(mask: int | None) -> list[str] | None:
    if mask is None:
        return None
    return [name for name, bit in THROTTLE_REASONS.items() if mask & bit]


def energy_per_image(before: dict[str, Any], after: dict[str, Any], images: int) -> float | None:
    """Millijoules per image over the timed loop; None when the counter is unsupported."""
    start, end = before.get("energy_mJ"), after.get("energy_mJ")
    if start is None or end is None or images <= 0 or end < start:
        return None
    return (end - start) / images


def throttled(snapshot: dict[str, Any]) -> list[str]:
    """Throttle reasons that slow a benchmark (idle and sync-boost are not among them)."""
    return [r for r in snapshot.get("throttle_reasons") or [] if r not in BENIGN_REASONS]
