"""A Griffe extension that renders the Sphinx roles of mdmest's docstrings in the mkdocstrings pages.

The docstrings write cross-references the Sphinx way (``:func:`estimate```,
``:class:`~mdmest.critics.MLPCritic```, ``:math:`e^T```); mkdocstrings reads Markdown, where these
would show as literal text. Once the package is loaded, this extension rewrites every docstring of
its objects (the source files are untouched):

- ``:func:``, ``:class:``, ``:meth:``, ``:attr:``, ``:mod:``, ``:data:``, ``:exc:``, ``:obj:`` become
  an optional autorefs cross-reference with the name as inline code: a link where the target is
  rendered on some API page, plain inline code where it is not (a private helper, torch), so that
  ``mkdocs build --strict`` never fails on one. The target is resolved as Python would in the
  docstring's scope (``Task`` in ``mdmest.tasks`` is ``mdmest.tasks.base.Task``); ``~a.b.c`` shows
  ``c``; ``!name`` is never linked.
- ``:math:`...``` becomes inline math for ``pymdownx.arithmatex`` (rendered by MathJax).

Enabled in mkdocs.yml under the python handler's ``options: extensions:``.
"""

from __future__ import annotations

import html
import re

import griffe

ROLE = re.compile(r":(?:py:)?(func|class|meth|attr|mod|data|exc|obj|math):`([^`]+)`")
LINKED = "mdmest"


def _target(obj: griffe.Object, name: str) -> str | None:
    """The full path of ``name`` as seen from ``obj``'s docstring, or None where it is not mdmest's."""
    if name.startswith(LINKED + ".") or name == LINKED:
        return name
    head, _, rest = name.partition(".")
    scope: griffe.Object | None = obj
    while scope is not None:
        try:
            path = scope.resolve(head)
        except (griffe.NameResolutionError, griffe.AliasResolutionError, KeyError):
            path = None
        if path:
            full = f"{path}.{rest}" if rest else path
            return full if full.startswith(LINKED + ".") else None
        scope = scope.parent
    return None


def _public(path: str, aliases: dict[str, str]) -> str | None:
    """The shortest public name of ``path`` (``mdmest.measures.X.y`` -> ``mdmest.X.y``), if any."""
    parts = path.split(".")
    for cut in range(len(parts), 1, -1):
        head = ".".join(parts[:cut])
        if head in aliases:
            return ".".join([aliases[head], *parts[cut:]])
    return None


def render_role(
    obj: griffe.Object, role: str, text: str, aliases: dict[str, str] | None = None
) -> str:
    """The Markdown (with inline HTML) that replaces one role."""
    if role == "math":
        return rf"\({text}\)"
    text = text.strip()
    link = not text.startswith("!")
    name = text.lstrip("!~")
    title = name.rsplit(".", 1)[-1] if text.startswith("~") else name
    if role in ("func", "meth"):
        title += "()"
    code = f"<code>{html.escape(title)}</code>"
    path = _target(obj, name) if link else None
    if path is None:
        return code
    # The page may render the object under its public name or its canonical one: autorefs tries
    # the identifier, then the slug.
    public = _public(path, aliases or {})
    slug = f' slug="{html.escape(public)}"' if public and public != path else ""
    return f'<autoref identifier="{html.escape(path)}"{slug} optional>{code}</autoref>'


def rewrite(obj: griffe.Object, text: str, aliases: dict[str, str] | None = None) -> str:
    """``text`` with every Sphinx role replaced."""
    return ROLE.sub(lambda m: render_role(obj, m[1], m[2], aliases), text)


class SphinxRoles(griffe.Extension):
    """Rewrites the Sphinx roles of every docstring of a loaded package (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        objects: list[griffe.Object] = []
        aliases: dict[str, str] = {}  # canonical path -> shortest re-exported path
        stack: list[griffe.Object] = [pkg]
        while stack:
            obj = stack.pop()
            objects.append(obj)
            for member in obj.members.values():
                if not member.is_alias:
                    stack.append(member)
                elif obj.is_module:
                    target = member.target_path
                    known = aliases.get(target)
                    if known is None or member.path.count(".") < known.count("."):
                        aliases[target] = member.path
        for obj in objects:
            if obj.docstring is not None and ":" in obj.docstring.value:
                obj.docstring.value = rewrite(obj, obj.docstring.value, aliases)
