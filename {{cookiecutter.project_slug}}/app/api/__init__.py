"""The HTTP face: routers that parse a request, call one flow or service, and choose the answer."""
