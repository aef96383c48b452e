"""modeldepot's Python SDK: the whole API of a running service, typed, sync or asyncio.

::

    from modeldepot.client import Client
    from modeldepot.errors import DownloadInProgress

    with Client("http://localhost:8000") as client:      # or MODELDEPOT_URL; api_key= or
        status = client.model_status("tiny-ti2v")        # MODELDEPOT_API_KEY
        if not status.is_available:
            try:
                client.download("tiny-ti2v", priority="high")
            except DownloadInProgress as exc:            # 409: one is running already
                print("joining", exc.details["download_id"])
            client.wait_until_available("tiny-ti2v", timeout=600)
        with client.generation("tiny-ti2v", steps=30):   # usage reported in the background
            ...                                          # generate

Answers are the service's own pydantic models (``ModelStatus``, ``ProgressResponse``,
...); errors are the service's own classes (``modeldepot.errors``: ``ModelNotFound``,
``DownloadInProgress``, ``Conflict``, ``DepotError``, ...), an unknown code falling back to
its status's base class or ``ServiceError``; no answer at all is ``ServiceUnreachable``.
429 and 503 answers are retried after their ``Retry-After`` (``RetryPolicy``), POSTs too:
both mean the service did nothing.

Live events, typed (``modeldepot.events``), surviving a restart of the service::

    with client.events(model_ids=["tiny-ti2v"], types=["model_download_progress"]) as events:
        for event in events:
            print(event.progress_percent, event.status)

asyncio: the same, awaited. Waiting for a queued request's model::

    async with AsyncClient() as client, client.events(types=["queue_entry_change"]) as events:
        queued = await client.enqueue("tiny-t2v", "a cat on a skateboard")
        while queued.status == "WAITING":                 # READY at once if available
            event = await events.get()
            if event.queue_id == queued.queue_id:
                queued = await client.queue_entry(queued.queue_id)
        entry = await client.claim(queued.queue_id)      # one claimer gets it; or it expired
        generate(entry.request.prompt, **entry.request.parameters)

Code written for the seed's SDK class keeps working with
``EnhancedModelAvailabilityClient`` (``modeldepot.client.compat``): plain dicts, and
errors that are ``requests.exceptions.HTTPError`` too.
"""

from modeldepot.client.aio import AsyncClient
from modeldepot.client.calls import RetryPolicy
from modeldepot.client.compat import EnhancedModelAvailabilityClient
from modeldepot.client.errors import RateLimited, ServiceError, UnexpectedResponse, WaitTimeout
from modeldepot.client.stream import AsyncEventStream, EventStream
from modeldepot.client.sync import Client
from modeldepot.errors import ServiceUnreachable
from modeldepot.usage.reporter import Backoff

__all__ = [
    "AsyncClient",
    "AsyncEventStream",
    "Backoff",
    "Client",
    "EnhancedModelAvailabilityClient",
    "EventStream",
    "RateLimited",
    "RetryPolicy",
    "ServiceError",
    "ServiceUnreachable",
    "UnexpectedResponse",
    "WaitTimeout",
]
