"""Prometheus metrics of the autoscaler, in the text exposition format (standard library only)."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .condor import Slot
from .model import Plan

HELP = {
    "af_autoscaler_idle_jobs": ("gauge", "Idle jobs assigned to the group in the last cycle."),
    "af_autoscaler_unmatched_jobs": ("gauge", "Idle jobs that match no worker group."),
    "af_autoscaler_unserved_jobs": ("gauge", "Idle jobs whose matching groups are all at their limits."),
    "af_autoscaler_workers_desired": ("gauge", "Workers the planner wants in the group."),
    "af_autoscaler_workers_actual": ("gauge", "Worker pods of the group."),
    "af_autoscaler_running_jobs": ("gauge", "Jobs running in the group's slots (their dynamic slots)."),
    "af_autoscaler_cores": ("gauge", "Cores the group's slots advertise."),
    "af_autoscaler_busy_cores": ("gauge", "Cores of the group's slots claimed by running jobs."),
    "af_autoscaler_decisions_total": ("counter", "Decisions applied, by group and direction."),
    "af_autoscaler_cycle_seconds": ("gauge", "Duration of the last planning cycle."),
    "af_autoscaler_cycle_errors_total": ("counter", "Cycles that failed."),
}


class Metrics:
    """Values the controller records; `render` gives the exposition text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._gauges: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)

    def record(self, plan: Plan, seconds: float, slots: Iterable[Slot] = ()) -> None:
        by_group: dict[str, list[Slot]] = defaultdict(list)
        for slot in slots:
            by_group[slot.group].append(slot)
        with self._lock:
            for name in plan.decisions:
                labels = (("group", name),)
                group = by_group.get(name, [])
                self._gauges[("af_autoscaler_running_jobs", labels)] = sum(s.jobs for s in group)
                self._gauges[("af_autoscaler_cores", labels)] = sum(s.cpus for s in group)
                self._gauges[("af_autoscaler_busy_cores", labels)] = sum(s.cpus - s.free.cpus for s in group)
            for name, decision in plan.decisions.items():
                labels = (("group", name),)
                self._gauges[("af_autoscaler_idle_jobs", labels)] = plan.assigned.get(name, 0)
                self._gauges[("af_autoscaler_workers_desired", labels)] = decision.desired
                self._gauges[("af_autoscaler_workers_actual", labels)] = decision.current
                if decision.desired != decision.current:
                    direction = "up" if decision.desired > decision.current else "down"
                    self._counters[("af_autoscaler_decisions_total", (*labels, ("direction", direction)))] += 1
            self._gauges[("af_autoscaler_unmatched_jobs", ())] = sum(n for _, n in plan.unmatched)
            self._gauges[("af_autoscaler_unserved_jobs", ())] = sum(n for _, n in plan.unserved)
            self._gauges[("af_autoscaler_cycle_seconds", ())] = seconds

    def error(self) -> None:
        with self._lock:
            self._counters[("af_autoscaler_cycle_errors_total", ())] += 1

    def render(self) -> str:
        with self._lock:
            samples = {**self._gauges, **self._counters}
        lines = []
        for metric, (kind, text) in HELP.items():
            lines += [f"# HELP {metric} {text}", f"# TYPE {metric} {kind}"]
            for (name, labels), value in sorted(samples.items()):
                if name == metric:
                    label_text = ",".join(f'{k}="{v}"' for k, v in labels)
                    lines.append(f"{name}{{{label_text}}} {value:g}" if labels else f"{name} {value:g}")
        return "\n".join(lines) + "\n"


def serve(metrics: Metrics, port: int) -> ThreadingHTTPServer:
    """Expose /metrics on `port` from a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = metrics.render().encode() if self.path == "/metrics" else b"see /metrics\n"
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
