"""The local web UI (`sqlorch ui`): pages and their JSON twins over the app use cases.

It reads the state store and the cached graph only (never the warehouse file); launches
are separate `sqlorch` processes. `create_app` (in `sqlorch.web.server`) builds the app.
"""
