"""Terminal renderers of the lineage documents (`sqlorch lineage`, `sqlorch diff`).

The documents are computed by `sqlorch.app.lineage`; the renderers only print them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlorch.cli.render import escape


def render_table(console: Any, doc: Mapping[str, Any]) -> None:
    """Print `table_document` output for a person."""
    from rich.table import Table

    where = f", {doc['file']}" if doc.get("file") else ""
    console.print(f"[bold]{escape(doc['asset'])}[/] ({doc['kind']}{escape(where)})")
    if doc.get("error"):
        console.print(f"[red]lineage unknown:[/] {escape(doc['error'])}")
    for note in doc.get("notes") or ():
        console.print(f"[dim]{escape(note)}[/]")
    table = Table(box=None, pad_edge=False)
    for col in ("column", "transform", "upstream"):
        table.add_column(col, overflow="fold")
    for c in doc["columns"]:
        if c["error"]:
            table.add_row(escape(c["name"]), "[yellow]unknown[/]", escape(c["error"]))
            continue
        if not c["upstream"]:
            table.add_row(escape(c["name"]), "-", "-")
            continue
        kinds = sorted({u["transform"] for u in c["upstream"]})
        table.add_row(
            escape(c["name"]),
            ", ".join(kinds),
            escape(", ".join(u["column"] for u in c["upstream"])),
        )
    console.print(table)
    if doc.get("keys"):
        by_kind: dict[str, list[str]] = {}
        for k in doc["keys"]:
            by_kind.setdefault(k["transform"], []).append(k["column"])
        for kind, cols in sorted(by_kind.items()):
            console.print(f"{kind.replace('_', ' ')}: {escape(', '.join(cols))}")
    if doc.get("hidden_dependencies"):
        console.print(
            "[yellow]hidden dependencies[/] (read without ref/source): "
            + escape(", ".join(doc["hidden_dependencies"]))
        )


def render_tree(console: Any, tree: Mapping[str, Any], direction: str) -> None:
    """Print a lineage tree for a person."""

    def label(node: Mapping[str, Any]) -> str:
        text = f"{escape(node['column'])} [dim]({node.get('kind', '?')})[/]"
        if node.get("transform"):
            text = f"[cyan]{node['transform']:<11}[/] " + text
        if node.get("error"):
            text += f" [yellow]lineage unknown: {escape(node['error'])}[/]"
        elif node.get("note"):
            text += f" [dim]— {escape(node['note'])}[/]"
        return text

    lines = [label(tree)]

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        children = node.get(direction) or []
        for i, child in enumerate(children):
            last = i == len(children) - 1
            lines.append(prefix + ("└── " if last else "├── ") + label(child))
            walk(child, prefix + ("    " if last else "│   "))

    walk(tree, "")
    if not tree.get(direction) and not tree.get("error") and not tree.get("note"):
        lines.append(f"[dim](no {direction} columns)[/]")
    for line in lines:
        console.print(line, highlight=False)


def render_impact(console: Any, doc: Mapping[str, Any]) -> None:
    """Print `sqlorch diff` for a person."""
    changes = doc["changes"]
    if not changes:
        console.print("No model changed since it was last materialized.")
        return
    console.print(f"{len(changes)} model(s) changed since their last materialization:")
    for c in changes:
        where = f" ({c['file']})" if c.get("file") else ""
        verdict = "[red]breaking[/]" if c["breaking"] else "[green]non-breaking[/]"
        console.print(f"  [bold]{escape(c['key'])}[/]{escape(where)} {c['status']}: {verdict}")
        for label in ("added", "removed", "modified"):
            if c[label]:
                console.print(f"      {label}: {escape(', '.join(c[label]))}")
        if c["renamed"]:
            pairs = ", ".join(f"{r['from']} -> {r['to']}" for r in c["renamed"])
            console.print(f"      renamed: {escape(pairs)}")
        if c["keys_changed"]:
            console.print("      filters, joins or grouping changed: every row may differ")
        if c["unknown"]:
            console.print(f"      [yellow]{escape(c['unknown'])}[/]")
        if c["status"] != "new":
            affected = c["affected"]
            shown = ", ".join(affected[:12]) + (
                f", ... ({len(affected)} in all)" if len(affected) > 12 else ""
            )
            console.print(f"      affected downstream: {escape(shown) if affected else '(none)'}")
