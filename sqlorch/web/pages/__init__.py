"""The page families: one module each, each with its `ROUTES` (see `sqlorch.web.routes`)."""
