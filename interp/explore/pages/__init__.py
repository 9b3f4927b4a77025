"""One module per explorer page: ``layout(results)``, plain callback functions, and ``register(app, ...)``."""
