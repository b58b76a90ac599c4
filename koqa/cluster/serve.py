"""Reader serving on Ray Serve: koqa's own FastAPI app as the ingress, the reader as a deployment.

``build_app`` returns a Serve application of two deployments:

* ``KoqaIngress`` (``@serve.ingress``): :func:`koqa.api.app.create_app` built in each replica,
  with the store of its settings (PostgreSQL + pgvector, so every replica sees every write)
  and, in place of the in-process :class:`~koqa.api.batcher.MicroBatcher`, a
  :class:`RemoteReader` that sends each question to the reader deployment. Same routes,
  same errors, same Hugging Face-compatible ``/models/reader`` endpoint.
* ``KoqaReader``: loads the reader once per replica; ``@serve.batch`` groups questions of
  concurrent requests (from every ingress replica) into one ``read_batch`` call. Replicas
  are fixed or autoscaled; each takes a GPU when the cluster has one.

``koqa serve --cluster ADDRESS`` connects to a Ray cluster and runs it.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Callable, Sequence

from ray import serve

from koqa.api.batcher import BatchStats, ReadOptions
from koqa.api.config import ServerConfig
from koqa.errors import InvalidInput
from koqa.settings import Settings

__all__ = ["ReaderScaling", "RemoteReader", "build_app"]


@dataclass(frozen=True)
class ReaderScaling:
    """Reader replicas: ``replicas`` fixed, or autoscaled from ``replicas`` to ``max_replicas``
    aiming at ``target_ongoing`` questions per replica. ``num_gpus`` per replica (None: 1 when
    the cluster has GPUs, else 0); ``cpus`` per reader replica without a GPU and ``ingress_cpus``
    per ingress replica are what Ray reserves for them (fractions share a core).

    >>> ReaderScaling(replicas=2).check_fits({"CPU": 2.0})
    Traceback (most recent call last):
    koqa.errors.InvalidInput: replicas: 2 reader replicas x 1 CPU + 1 ingress x 1 CPU need 3 CPUs, the cluster has 2; add nodes or lower --reader-cpus / --ingress-cpus (got 2)
    >>> ReaderScaling(replicas=2, cpus=0.5).check_fits({"CPU": 2.0})
    """

    replicas: int = 1
    max_replicas: int | None = None
    target_ongoing: int = 16
    num_gpus: float | None = None
    ingress_replicas: int = 1
    cpus: float = 1.0
    ingress_cpus: float = 1.0

    def reader_options(self, cluster_gpus: float) -> dict:
        gpus = self._gpus(cluster_gpus)
        opts: dict = {"ray_actor_options": {"num_gpus": gpus, "num_cpus": 0 if gpus else self.cpus}}
        if self.max_replicas and self.max_replicas > self.replicas:
            opts["autoscaling_config"] = {"min_replicas": self.replicas, "max_replicas": self.max_replicas,
                                          "target_ongoing_requests": self.target_ongoing}
        else:
            opts["num_replicas"] = self.replicas
        return opts

    def check_fits(self, cluster: dict[str, float]) -> None:
        """Refuse, naming the numbers, what Ray could never place: Serve would wait forever for it.

        Totals only: Serve spreads replicas over nodes, so on small nodes a replica can still find
        no node with room left (two 0.5-CPU readers on two 1-CPU nodes leave no whole CPU for an
        ingress); lower ``ingress_cpus`` / ``cpus`` then."""
        have_gpus, have_cpus = cluster.get("GPU", 0.0), cluster.get("CPU", 0.0)
        gpus = self._gpus(have_gpus)
        reader_cpus = 0.0 if gpus else self.cpus
        need_cpu = self.replicas * reader_cpus + self.ingress_replicas * self.ingress_cpus
        if gpus and self.replicas * gpus > have_gpus:
            raise InvalidInput("replicas", self.replicas, f"{self.replicas} reader replicas x {gpus:g} GPU need more "
                                                          f"GPUs than the cluster's {have_gpus:g}")
        if need_cpu > have_cpus:
            raise InvalidInput("replicas", self.replicas, f"{self.replicas} reader replicas x {reader_cpus:g} CPU + "
                               f"{self.ingress_replicas} ingress x {self.ingress_cpus:g} CPU need {need_cpu:g} CPUs, "
                               f"the cluster has {have_cpus:g}; add nodes or lower --reader-cpus / --ingress-cpus")

    def _gpus(self, cluster_gpus: float) -> float:
        return self.num_gpus if self.num_gpus is not None else (1.0 if cluster_gpus >= 1 else 0.0)


@serve.deployment(max_ongoing_requests=256)
class KoqaReader:
    """One reader per replica, reading batches gathered by ``@serve.batch``."""

    def __init__(self, reader_factory: Callable, max_batch_size: int, max_wait_s: float):
        self.reader = reader_factory()
        self.name = getattr(self.reader, "name", type(self.reader).__name__)
        self.stats = BatchStats()
        self.read.set_max_batch_size(max_batch_size)
        self.read.set_batch_wait_timeout_s(max_wait_s)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def read(self, items: list[tuple[str, Sequence[str], ReadOptions]]) -> list:
        """Spans (or the exception) of each ``(question, contexts, options)``; items with equal
        options share one reader call, and one bad item does not fail its batch-mates."""
        self.stats.batches += 1
        self.stats.items += len(items)
        self.stats.largest = max(self.stats.largest, len(items))
        out: list = [None] * len(items)
        groups: dict[ReadOptions, list[int]] = {}
        for i, (_, _, options) in enumerate(items):
            groups.setdefault(options, []).append(i)
        for options, where in groups.items():
            await self._read(items, where, options, out)
        return out

    async def _read(self, items, where: list[int], options: ReadOptions, out: list) -> None:
        try:
            spans = await asyncio.to_thread(self.reader.read_batch, [items[i][0] for i in where],
                                            [list(items[i][1]) for i in where], options.top_k, **options.kwargs())
            for i, s in zip(where, spans):
                out[i] = list(s)
        except Exception as exc:
            if len(where) > 1:
                for i in where:
                    await self._read(items, [i], options, out)
            else:
                out[where[0]] = exc

    def info(self) -> dict:
        """The reader's name and this replica's batching counters."""
        return {"name": self.name, "replica": os.getpid(), "batches": self.stats.batches,
                "items": self.stats.items, "largest": self.stats.largest}


class RemoteReader:
    """:class:`~koqa.api.batcher.MicroBatcher`'s interface over the reader deployment's handle
    (batching happens there); also the app's stand-in reader (``name``)."""

    def __init__(self, handle, name: str = "reader"):
        self.handle, self.name = handle, name
        self.stats = BatchStats()  # this replica's share: questions sent
        self.queued = 0

    async def __aenter__(self) -> "RemoteReader":
        info = await self.handle.info.remote()
        self.name = info["name"]
        return self

    async def __aexit__(self, *exc) -> None:
        return None

    async def submit(self, question: str, contexts: Sequence[str], options: ReadOptions = ReadOptions()) -> list:
        self.queued += 1
        try:
            result = await self.handle.read.remote((question, list(contexts), options))
        finally:
            self.queued -= 1
        self.stats.items += 1
        if isinstance(result, Exception):
            raise result
        return result

    async def submit_many(self, items, options: ReadOptions) -> list[list]:
        return list(await asyncio.gather(*(self.submit(q, c, options) for q, c in items)))

    async def read_batch(self, questions, contexts, top_k: int = 1, *, max_answer_len: int | None = None):
        options = ReadOptions(top_k=top_k, **({"max_answer_len": max_answer_len} if max_answer_len else {}))
        return await self.submit_many(list(zip(questions, contexts)), options)


@serve.ingress()
class KoqaIngress:
    """koqa's FastAPI app, built in the replica (the store connects there, not in the driver)."""

    def __init__(self, reader_handle, settings: Settings, config: ServerConfig, store_factory: Callable | None):
        self.reader_handle, self.settings, self.config = reader_handle, settings, config
        self.store_factory = store_factory

    def __serve_build_asgi_app__(self):
        from koqa.api.app import create_app

        store = self.store_factory() if self.store_factory is not None else None
        return create_app(self.settings, config=self.config, store=store, batcher=RemoteReader(self.reader_handle))


def build_app(settings: Settings, config: ServerConfig = ServerConfig(), scaling: ReaderScaling = ReaderScaling(),
              *, reader_factory: Callable | None = None, store_factory: Callable | None = None,
              cluster_gpus: float = 0.0):
    """The Serve application (``serve.run(build_app(...))``). ``reader_factory`` / ``store_factory``
    (picklable callables) replace loading the reader / the corpus from ``settings`` (tests)."""
    from functools import partial

    from koqa.pipeline.parts import load_reader

    reader = KoqaReader.options(**scaling.reader_options(cluster_gpus)).bind(
        reader_factory or partial(load_reader, settings), config.max_batch_size, config.max_wait_s)
    ingress = serve.deployment(KoqaIngress, name="KoqaIngress", num_replicas=scaling.ingress_replicas,
                               ray_actor_options={"num_cpus": scaling.ingress_cpus},
                               max_ongoing_requests=max(64, config.max_asks * 4))
    return ingress.bind(reader, settings, config, store_factory)


def run_on_cluster(address: str, settings: Settings, config: ServerConfig, scaling: ReaderScaling, *,
                   host: str = "127.0.0.1", port: int = 8000, echo: Callable[[str], None] = print) -> None:
    """``koqa serve --cluster``: connect, start Serve's HTTP proxy on ``host:port``, run until Ctrl-C."""
    import time

    import ray

    if settings.vector_store != "pgvector":
        raise InvalidInput("KOQA_VECTOR_STORE", settings.vector_store,
                           "cluster serving needs pgvector (every replica must see one store): "
                           "set KOQA_VECTOR_STORE=pgvector and a postgresql:// KOQA_DATABASE_URL")
    ray.init(address=address)
    resources = ray.cluster_resources()
    scaling.check_fits(resources)
    serve.start(http_options={"host": host, "port": port})
    gpus = resources.get("GPU", 0.0)
    serve.run(build_app(settings, config, scaling, cluster_gpus=gpus), name="koqa", route_prefix="/")
    echo(f"koqa: serving on http://{host}:{port}/ from Ray cluster {address} "
         f"({scaling.replicas}{'-' + str(scaling.max_replicas) if scaling.max_replicas else ''} reader replicas, "
         f"{'GPU' if gpus else 'CPU'}); Ctrl-C stops")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.delete("koqa")
