"""The command group loads a command's module only when that command runs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import click

from sqlorch.cli import COMMANDS, cli


def test_every_command_is_listed_with_its_own_summary() -> None:
    ctx = click.Context(cli)
    for name, (_module, _attribute, summary) in COMMANDS.items():
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name
        assert command.help is not None
        first = " ".join(command.help.split("\n\n")[0].split())
        assert summary == first, name


def test_help_imports_no_command_module() -> None:
    code = textwrap.dedent(
        """
        import json, sys
        from sqlorch.cli import cli
        try:
            cli(["--help"], prog_name="sqlorch")
        except SystemExit as exc:
            assert exc.code == 0
        print(json.dumps(sorted(m for m in sys.modules if m.startswith("sqlorch"))))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    modules = json.loads(done.stdout.strip().splitlines()[-1])
    assert [m for m in modules if m.startswith("sqlorch.cli.")] == []
    assert not [m for m in modules if m.startswith(("sqlorch.app", "sqlorch.load"))]
    for name in COMMANDS:
        assert name in done.stdout


def test_a_command_loads_only_its_module() -> None:
    code = textwrap.dedent(
        """
        import json, sys
        from sqlorch.cli import cli
        try:
            cli(["runs", "--help"], prog_name="sqlorch")
        except SystemExit as exc:
            assert exc.code == 0
        print(json.dumps(sorted(m for m in sys.modules if m.startswith("sqlorch.cli."))))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [
        "sqlorch.cli.history",
        "sqlorch.cli.options",
    ]
