"""The worker's own beat: every few seconds it reports its host (CPUs, memory, its pool, GPUs
with their utilisation and memory used now) and what it trains on which GPU to the API
(PUT /api/v1/worker/hosts/{name}); GET /api/v1/workers shows the fleet. A missed report
costs nothing: the next one carries everything."""

from __future__ import annotations

import logging
import threading
from importlib import metadata

from backend.config import get_settings
from worker import host, runner, unsent
from worker.http_port import report_host

log = logging.getLogger(__name__)

REPORT_EVERY_S = 5.0


class HostBeat:
    def __init__(self, name: str, *, concurrency: int | None) -> None:
        self.name = name
        self.concurrency = concurrency
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="host-beat", daemon=True)
        self._resources = host.probe(concurrency=concurrency, pool=get_settings().pool)
        try:
            self._version = metadata.version("fitboard")
        except metadata.PackageNotFoundError:
            self._version = ""

    def start(self) -> HostBeat:
        self._thread.start()
        gpus = self._resources["gpus"]
        log.info(
            "worker %s offers %s CPUs, %s MB, %s",
            self.name,
            self._resources["cpus"],
            self._resources["ram_mb"],
            ", ".join(f"GPU {g['index']} {g['name']}" for g in gpus) or "no GPU",
        )
        return self

    def stop(self) -> None:
        self._stop.set()

    def report_once(self) -> None:
        settings = get_settings()
        running = runner.running()
        busy = {index for r in running for index in r["gpus"]}
        now = host.readings(runner.gpu_pool().devices, busy=busy)
        body = {
            "host": host.hostname(),
            "version": self._version,
            # the queue it consumes (and its own, <queue>.on-<name>): the API sends that
            # queue's runs as this worker has room
            "resources": {
                **self._resources,
                "queue": settings.queue,
                "own_queue": True,
                "gpus": [{**g, **now.get(g["index"], {})} for g in self._resources["gpus"]],
            },
            "running": running,
        }
        report_host(settings.url, settings.worker_token, self.name, body)

    def _loop(self) -> None:
        while True:
            try:
                self.report_once()
                unsent.send_pending()  # models a run could not upload, once the API is back
            except Exception as exc:  # the API away: the next beat tells everything again
                log.debug("host report failed: %s", exc)
            if self._stop.wait(REPORT_EVERY_S):
                return
