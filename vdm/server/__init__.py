"""The pure ASGI application, its endpoints, and the embedded Hypercorn server."""
