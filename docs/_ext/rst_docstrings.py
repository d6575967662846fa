"""Griffe extension for the API page: render ecert's reST-flavoured docstrings as Markdown.

ecert's docstrings use Sphinx roles (:class:`X`, :meth:`Y`) and ``::`` literal blocks.
mkdocstrings renders docstrings as Markdown, so this rewrites, for display only:

* ``:role:`~a.b.C``` and ``:role:`C``` to ```C``` (inline code);
* a paragraph ending in ``::`` followed by an indented block to the paragraph (ending
  in ``:``, or nothing for a bare ``::``) and a fenced code block.

Loaded by mkdocs.yml (plugins → mkdocstrings → python → options → extensions); it is not
part of the site (exclude_docs).
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|exc|data|mod|obj|const):`~?([^`]+)`")


def _roles(text: str) -> str:
    return _ROLE.sub(lambda m: f"`{m.group(1)}`", text)


def _literal_blocks(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::"):
            head = line.rstrip()[:-2].rstrip()
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            block: list[str] = []
            while j < len(lines) and (not lines[j].strip() or lines[j].startswith((" ", "\t"))):
                block.append(lines[j])
                j += 1
            while block and not block[-1].strip():
                block.pop()
            if block:
                indent = min(len(b) - len(b.lstrip()) for b in block if b.strip())
                if head:
                    out.append(head + ":")
                out.append("")
                out.append("```text")
                out.extend(b[indent:] for b in block)
                out.append("```")
                out.append("")
                i = j
                continue
        out.append(line)
        i += 1
    return "\n".join(out)


class RstDocstrings(Extension):
    """Rewrite docstrings of every loaded object."""

    def on_instance(self, *, obj: Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _roles(_literal_blocks(obj.docstring.value))
