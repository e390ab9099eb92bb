"""`sqlorch init github`: wire the repo into GitHub Actions (workflows in .github/workflows/)."""

from __future__ import annotations

import click

from sqlorch.cli.options import common, console, handle_errors, load_settings


@click.group()
def init() -> None:
    """Set the repo up for sqlorch: `init github` writes the GitHub Actions workflows."""


@init.command()
@common
@click.option("--prod-target", default="prod", show_default=True, help="The production target.")
@click.option(
    "--force", is_flag=True, help="Overwrite workflows edited by hand since init wrote them."
)
@handle_errors
def github(
    project_dir: str | None,
    profiles_dir: str | None,
    target: str | None,
    debug: bool,
    prod_target: str,
    force: bool,
) -> None:
    """Write sqlorch-pr/deploy/schedule/backfill workflows into .github/workflows/.

    With a PostgreSQL state URL in the settings (or SQLORCH_STATE_URL set), the workflows keep
    state there (from the secret SQLORCH_STATE_URL); otherwise `.sqlorch/` travels through the
    Actions cache. Re-running keeps workflows edited by hand unless --force.
    """
    from sqlorch.cli.workflows import WorkflowOptions, write_workflows

    settings = load_settings(project_dir, profiles_dir, target)
    options = WorkflowOptions(prod_target=prod_target, postgres_state=bool(settings.state_url))
    outcomes = write_workflows(settings.root, options, force=force)
    folder = settings.root / ".github" / "workflows"
    for name, outcome in outcomes.items():
        console().print(f"{folder / name}: {outcome.value}")
    state = (
        "state in PostgreSQL (secret SQLORCH_STATE_URL)"
        if options.postgres_state
        else "state through the Actions cache"
    )
    console().print(
        f"Target {prod_target!r}, {state}. Add the secrets the workflows name "
        "(SQLORCH_PG_HOST, SQLORCH_PG_PORT, SQLORCH_PG_USER, SQLORCH_PG_PASSWORD, "
        "SQLORCH_PG_DBNAME) under Settings > Secrets and variables > Actions."
    )
