"""What a reader sees after a notebook ran: every figure once, and no value that nobody meant
to print. Used by the checks of ``make test`` over the executed notebooks."""

from __future__ import annotations

import re

# the text of a result nobody meant to show: a matplotlib object's repr (Text, Legend, a list
# of Line2D ...), or a bare string that a setup call returned
_LEAKED = re.compile(r"^(\[?<(matplotlib|mpl_toolkits)\.[\w.]+ (object )?at 0x[0-9a-f]+>|"
                     r"\[?(Text|Line2D|Legend)\(.*\)|<Figure size .*>|'[^'\n]*'|\"[^\"\n]*\")")


def _images(output) -> list[str]:
    data = output.get("data", {})
    return [data[kind] for kind in ("image/png", "image/svg+xml", "image/jpeg") if kind in data]


def output_problems(nb) -> list[str]:
    """Each code cell of the executed notebook ``nb`` that shows one image twice, or whose
    result (``Out[n]``) is a matplotlib object's text or a bare string: ``["cell 5: the same
    figure twice", ...]`` (cell numbers counted from 0 over all cells)."""
    problems = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        seen = set()
        for output in cell.get("outputs", []):
            for image in _images(output):
                key = image if isinstance(image, str) else "".join(image)
                if key in seen:
                    problems.append(f"cell {index}: the same figure twice (end the cell with "
                                    "';' so that the returned figure is not shown again)")
                seen.add(key)
            if output.get("output_type") == "execute_result" and not _images(output):
                text = output.get("data", {}).get("text/plain", "")
                text = text if isinstance(text, str) else "".join(text)
                if _LEAKED.match(text.strip()):
                    problems.append(f"cell {index}: a leaked value {text.strip()[:60]!r} (end "
                                    "the cell with ';' or assign the result)")
    return problems
