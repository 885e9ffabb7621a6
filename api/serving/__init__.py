"""How the API is served: an asyncio front that buffers each request before a bounded thread pool
runs the (synchronous) Falcon WSGI app. See :mod:`api.serving.front` and :mod:`api.serving.worker`."""
