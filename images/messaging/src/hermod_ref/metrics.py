"""Prometheus metrics, summed over all worker processes at scrape time.

The hot path only does plain Python arithmetic on per-worker numbers (no locks, no
files, no mmap write per increment). Each worker publishes a snapshot of its numbers
into its own slot of a shared anonymous memory map (created by the supervisor before
it forks) every PUBLISH_INTERVAL seconds; a scrape on any worker publishes its own
slot, reads all slots and sums them, so the figures are those of the whole instance
(a sibling's are at most PUBLISH_INTERVAL old). A slot is guarded by a sequence
number (odd while being written), so a reader never sums a half-written snapshot.
Callback backlog gauges come from the database at scrape time: they are cluster-wide.
"""

from __future__ import annotations

import bisect
import json
import math
import mmap
import struct

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
LIFECYCLE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)
PUBLISH_INTERVAL = 0.1
SLOT_SIZE = 64 * 1024
_HEAD = struct.Struct("<QI")  # sequence, length of the JSON snapshot that follows

_REGISTRY: list = []


def _go_float(value: float) -> str:
    """Number formatting of the Prometheus text format (as prometheus_client writes it)."""
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class _Value:
    __slots__ = ("value",)

    def __init__(self):
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount


class Counter:
    """A counter, optionally with one label; children are created on first use."""

    def __init__(self, name: str, documentation: str, labelnames=()):
        self.name, self.documentation = name, documentation
        self.labelname = labelnames[0] if labelnames else None
        if len(labelnames) > 1:
            raise ValueError("one label at most")
        self.children: dict[str, _Value] = {}
        self._plain = _Value()
        _REGISTRY.append(self)

    def labels(self, value: str) -> _Value:
        child = self.children.get(value)
        if child is None:
            child = self.children[value] = _Value()
        return child

    def inc(self, amount: float = 1) -> None:
        self._plain.value += amount

    def snapshot(self):
        if self.labelname is None:
            return self._plain.value
        return {k: v.value for k, v in self.children.items()}

    def expose(self, snapshots: list) -> list[str]:
        lines = [f"# HELP {self.name} {self.documentation}", f"# TYPE {self.name} counter"]
        if self.labelname is None:
            lines.append(f"{self.name} {_go_float(sum(s for s in snapshots if s is not None))}")
            return lines
        total: dict[str, float] = {}
        for snap in snapshots:
            for k, v in (snap or {}).items():
                total[k] = total.get(k, 0.0) + v
        for k in sorted(total):
            lines.append(f'{self.name}{{{self.labelname}="{_escape(k)}"}} {_go_float(total[k])}')
        return lines


class Histogram:
    def __init__(self, name: str, documentation: str, buckets):
        self.name, self.documentation = name, documentation
        self.bounds = tuple(float(b) for b in buckets)
        self.counts = [0] * (len(self.bounds) + 1)  # last one: above every bound (+Inf only)
        self.sum = 0.0
        _REGISTRY.append(self)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def snapshot(self):
        return [self.counts[:], self.sum]

    def expose(self, snapshots: list) -> list[str]:
        counts = [0] * (len(self.bounds) + 1)
        total_sum = 0.0
        for snap in snapshots:
            if snap:
                for i, c in enumerate(snap[0]):
                    counts[i] += c
                total_sum += snap[1]
        lines = [f"# HELP {self.name} {self.documentation}", f"# TYPE {self.name} histogram"]
        cumulative = 0
        for bound, c in zip(self.bounds + (math.inf,), counts):
            cumulative += c
            lines.append(f'{self.name}_bucket{{le="{_go_float(bound)}"}} {_go_float(cumulative)}')
        lines.append(f"{self.name}_count {_go_float(cumulative)}")
        lines.append(f"{self.name}_sum {_go_float(total_sum)}")
        return lines


ACCEPTED = Counter("hermod_commands_accepted_total", "Commands accepted", ["type"])
REJECTED = Counter("hermod_commands_rejected_total", "Commands refused", ["reason"])
RESPONSES = Counter("hermod_device_responses_total", "Device responses by outcome", ["outcome"])
EXPIRED = Counter("hermod_commands_expired_total", "Commands that timed out (timeout callback queued)")
DELIVERED = Counter("hermod_callbacks_delivered_total", "Callbacks delivered (2xx)", ["type"])
ATTEMPT_FAILED = Counter("hermod_callback_attempts_failed_total", "Callback attempts that failed and will be retried")
FAILED = Counter("hermod_callbacks_failed_total", "Callbacks given up after max-age")
RETENTION_DELETED = Counter("hermod_commands_deleted_total",
                            "Finished commands deleted after hermod.retention.period (with their callbacks)")
ACCEPT_LATENCY = Histogram("hermod_command_accept_seconds", "Time to accept a command",
                           buckets=LATENCY_BUCKETS)
DELIVERY_LATENCY = Histogram("hermod_callback_delivery_seconds", "Duration of one callback HTTP attempt",
                             buckets=LATENCY_BUCKETS)
LIFECYCLE = Histogram("hermod_callback_age_seconds", "Callback queued -> delivered",
                      buckets=LIFECYCLE_BUCKETS)


class Shared:
    """One slot per worker in an anonymous shared mapping (inherited across fork)."""

    def __init__(self, slots: int):
        self.slots = slots
        self.map = mmap.mmap(-1, slots * SLOT_SIZE)  # MAP_SHARED | MAP_ANONYMOUS
        self.index: int | None = None
        self._seq = 0

    def publish(self) -> None:
        if self.index is None:
            return
        data = json.dumps([m.snapshot() for m in _REGISTRY], separators=(",", ":")).encode()
        if len(data) > SLOT_SIZE - _HEAD.size:
            return  # cannot happen with the fixed label sets above; never corrupt a neighbour
        base = self.index * SLOT_SIZE
        self._seq += 1  # odd: being written
        _HEAD.pack_into(self.map, base, self._seq, 0)
        self.map[base + _HEAD.size:base + _HEAD.size + len(data)] = data
        self._seq += 1  # even: complete
        _HEAD.pack_into(self.map, base, self._seq, len(data))

    def read(self, index: int):
        base = index * SLOT_SIZE
        for _ in range(100):
            seq, length = _HEAD.unpack_from(self.map, base)
            if seq == 0:
                return None  # that worker has not published yet
            if seq % 2:
                continue
            data = bytes(self.map[base + _HEAD.size:base + _HEAD.size + length])
            if _HEAD.unpack_from(self.map, base)[0] == seq:
                return json.loads(data)
        return None


_shared: Shared | None = None


def init_shared(workers: int) -> None:
    """In the supervisor, before forking the workers."""
    global _shared
    _shared = Shared(workers)


def attach(index: int) -> None:
    """In a worker, right after the fork: this worker writes slot `index`."""
    if _shared is not None:
        _shared.index = index


def publish() -> None:
    if _shared is not None:
        _shared.publish()


async def publisher(stop_event) -> None:
    """Worker background task: keep this worker's slot fresh (off the request path)."""
    import asyncio

    while not stop_event.is_set():
        publish()
        try:
            await asyncio.wait_for(stop_event.wait(), PUBLISH_INTERVAL)
        except asyncio.TimeoutError:
            pass
    publish()


def exposition(gauges: dict | None) -> bytes:
    own = [m.snapshot() for m in _REGISTRY]
    per_worker = [own]
    if _shared is not None and _shared.index is not None:
        _shared.publish()
        for i in range(_shared.slots):
            if i != _shared.index:
                snap = _shared.read(i)
                if snap is not None:
                    per_worker.append(snap)
    lines: list[str] = []
    for pos, metric in enumerate(_REGISTRY):
        lines += metric.expose([w[pos] for w in per_worker])
    for name, (value, help_text) in (gauges or {}).items():
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value}"]
    return ("\n".join(lines) + "\n").encode()
