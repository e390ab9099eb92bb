"""What every page handler reads: the settings, the CSRF token, templates, caches, launches."""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlorch.settings import Settings
from sqlorch.web.launcher import Launcher
from sqlorch.web.layout import LayoutCache

if TYPE_CHECKING:
    import jinja2
    from starlette.requests import Request


@dataclass(frozen=True, slots=True)
class WebContext:
    """The web app's state: one per server process."""

    settings: Settings
    templates: jinja2.Environment
    launcher: Launcher
    csrf_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    layouts: LayoutCache = field(default_factory=LayoutCache)


def make_context(settings: Settings) -> WebContext:
    """Return the context of a new app over `settings` (the warehouse file is never read)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("sqlorch.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    quiet = dataclasses.replace(settings, warehouse_reads=False)
    return WebContext(settings=quiet, templates=env, launcher=Launcher(quiet))


def context_of(request: Request) -> WebContext:
    """Return the app's context."""
    ctx: Any = request.app.state.ctx
    assert isinstance(ctx, WebContext)
    return ctx
