"""The HTTP layer: the app, its dependencies, errors, headers and docs."""
