"""The claim check's PUTs (batchline/objects.py): each large request's params go to the object store
as soon as the request is encoded, on one pool of `BATCHLINE_S3_PUT_THREADS` threads the producer
keeps, so PUTs flow across chunk boundaries as a plain threaded uploader's do; a chunk's intake waits
for its own PUTs only (Redis never holds a reference to an object not yet stored)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from batchline import objects
from batchline.config.settings import Settings
from batchline.requests import EncodedRequest


class Claims:
    """The PUTs of one submit call: each document once (by its content-addressed key), whatever its
    chunk. `store_of` is called at the first large request, so a call without any imports no boto3.
    At most two PUTs per thread are queued or running: `start` waits for room, so a caller that
    encodes faster than the store takes holds a few documents, not all of them."""

    def __init__(
        self,
        store_of: Callable[[], objects.ObjectStore | None],
        pool: Callable[[], ThreadPoolExecutor],
        settings: Settings,
    ) -> None:
        self._store_of, self._pool, self._settings = store_of, pool, settings
        self._store: objects.ObjectStore | None = None
        self._puts: dict[str, Future[None]] = {}
        self._room = threading.BoundedSemaphore(2 * settings.s3_put_threads)

    def start(self, r: EncodedRequest) -> EncodedRequest:
        """`r` with its params replaced by their key, their PUT started. Size and digest stay those of
        the full params (quotas, fair share, conflicts are unchanged)."""
        if self._store is None:
            self._store = self._store_of()
            assert self._store is not None, "encode_request refuses a large request without a store"
        key = objects.params_key(self._settings, r.params_json)
        if key not in self._puts:
            self._room.acquire()
            put = self._pool().submit(self._store.put, key, r.params_json)
            put.add_done_callback(lambda _done: self._room.release())
            self._puts[key] = put
        return r._replace(params_json=objects.REF + key.encode())

    def wait(self, chunk: Sequence[EncodedRequest]) -> None:
        """Until every object `chunk` refers to is stored; the first fault raises (`RetryableError`
        naming the store), and then nothing of the chunk goes to Redis."""
        for r in chunk:
            if objects.is_ref(r.params_json):
                put = self._puts.get(objects.ref_key(r.params_json))
                if put is not None:
                    put.result()

    def cancel(self) -> None:
        """Drop the PUTs not started yet (the call failed or stopped at back-pressure)."""
        for put in self._puts.values():
            put.cancel()
