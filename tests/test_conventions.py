"""Every notebook follows the house skeleton and conventions (CONTRIBUTING.md), checked by
one function that lists what a notebook breaks; a small bad notebook shows it catches each."""

import ast
import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted(Path(__file__).resolve().parent.parent.glob("notebooks/*.ipynb"))
SECTION = re.compile(r"^## (\d+)\. (.+)$", re.M)
OTHER_SEEDING = re.compile(r"keras\.utils\.set_random_seed|np\.random\.seed|tf\.random\.set_seed"
                           r"|random\.seed\(")


def _code(cell) -> str:
    """A code cell's source with IPython magics blanked, so that ast can read it."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                     for line in cell.source.split("\n"))


def _assigned(source: str) -> list[str]:
    names = []
    for node in ast.parse(source).body:
        targets = (node.targets if isinstance(node, ast.Assign)
                   else [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else [])
        for target in targets:
            names += [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]
    return names


def notebook_problems(nb) -> list[str]:
    """What ``nb`` breaks of the skeleton: title and question, setup cell, parameters cell
    holding SEED, seeding right after it, numbered sections ending in a conclusion; and of
    the conventions: seeding only through config.set_seed, figures shown by the inline
    backend (no plt.show()), upper-case names only in the parameters cell."""
    problems = []
    cells = nb.cells
    if len(cells) < 4:
        return ["fewer than four cells: title, setup, parameters and seeding are required"]
    title = cells[0]
    if title.cell_type != "markdown" or not title.source.startswith("# "):
        problems.append("cell 0 must be markdown starting with the '# ' title")
    elif len([p for p in title.source.split("\n\n")[1:] if p.strip()]) < 1:
        problems.append("cell 0 needs a paragraph under the title: the question and what the "
                        "reader will see")
    setup = cells[1]
    backend = 'os.environ["KERAS_BACKEND"] = "tensorflow"'
    if setup.cell_type != "code" or backend not in setup.source:
        problems.append('cell 1 (setup) must set os.environ["KERAS_BACKEND"] = "tensorflow"')
    elif "import keras" in setup.source and (setup.source.index("import keras")
                                              < setup.source.index("KERAS_BACKEND")):
        problems.append("cell 1 (setup) must set KERAS_BACKEND before importing keras")
    if setup.cell_type == "code" and "%matplotlib inline" not in setup.source:
        problems.append("cell 1 (setup) must enable %matplotlib inline")
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])]
    if tagged != [2]:
        problems.append(f"cell 2, and only it, must be tagged 'parameters' (tagged: {tagged})")
    else:
        params = cells[2].source
        names = _assigned(params)
        if "config.fast_mode()" not in params:
            problems.append("the parameters cell must read config.fast_mode()")
        if "SEED" not in names:
            problems.append("the parameters cell must define SEED")
        lower = [n for n in names if not n.isupper()]
        if lower:
            problems.append(f"the parameters cell holds only upper-case constants, not {lower}")
    if cells[3].cell_type != "code" or not cells[3].source.startswith("config.set_seed(SEED)"):
        problems.append("cell 3 must seed everything right after the parameters: "
                        "config.set_seed(SEED)")
    markdown = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    numbers = [int(n) for n, _ in SECTION.findall(markdown)]
    titles = [t for _, t in SECTION.findall(markdown)]
    if numbers != list(range(1, len(numbers) + 1)) or not numbers:
        problems.append(f"sections must be numbered '## 1. ...', '## 2. ...' in order, "
                        f"got {numbers}")
    elif not titles[0].startswith("Data"):
        problems.append(f"section 1 must be Data, got {titles[0]!r}")
    if not any(t.startswith("Conclusion") for t in titles):
        problems.append("a numbered Conclusion section is required")
    for i, cell in enumerate(cells):
        if cell.cell_type != "code":
            continue
        if OTHER_SEEDING.search(cell.source):
            problems.append(f"cell {i} seeds by other means than config.set_seed")
        if "plt.show()" in cell.source:
            problems.append(f"cell {i} calls plt.show(): the inline backend shows figures; end "
                            "the cell's last statement with ';'")
        if i != 2:
            upper = [n for n in _assigned(_code(cell)) if n.isupper() and len(n) > 1]
            if upper:
                problems.append(f"cell {i} assigns upper-case names {upper} outside the "
                                "parameters cell; derived values are lower-case")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_follows_the_conventions(path):
    assert notebook_problems(nbformat.read(path, as_version=4)) == []


def _cell(kind, source, tags=None):
    cell = (nbformat.v4.new_markdown_cell if kind == "md" else nbformat.v4.new_code_cell)(source)
    if tags:
        cell.metadata["tags"] = tags
    return cell


GOOD = [
    _cell("md", "# A study\n\nWhat question it answers."),
    _cell("code", 'import os\n\nos.environ["KERAS_BACKEND"] = "tensorflow"\nimport keras\n\n'
                  "%matplotlib inline"),
    _cell("code", "FAST = config.fast_mode()\nSEED = 0\nEPOCHS = 2 if FAST else 20",
          ["parameters"]),
    _cell("code", "config.set_seed(SEED)"),
    _cell("md", "## 1. Data\n\nWhat comes."),
    _cell("code", "x = load(SEED)\nfig = plot(x);"),
    _cell("md", "## 2. Conclusion\n\nWhat we learned."),
]


def _notebook(cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.from_dict(c) for c in cells]
    return nb


def test_a_notebook_that_follows_the_skeleton_passes():
    assert notebook_problems(_notebook(GOOD)) == []


@pytest.mark.parametrize("index, cell, expected", [
    (0, _cell("md", "A study without a title"), "title"),
    (1, _cell("code", "import keras\n%matplotlib inline"), "KERAS_BACKEND"),
    (1, _cell("code", 'import keras\nos.environ["KERAS_BACKEND"] = "tensorflow"\n'
                      "%matplotlib inline"), "before importing keras"),
    (2, _cell("code", "FAST = config.fast_mode()", ["parameters"]), "must define SEED"),
    (2, _cell("code", "FAST = config.fast_mode()\nSEED = 0\nepochs = 3", ["parameters"]),
     "only upper-case"),
    (2, _cell("code", "FAST = config.fast_mode()\nSEED = 0"), "tagged 'parameters'"),
    (3, _cell("code", "x = 1"), "config.set_seed(SEED)"),
    (4, _cell("md", "## 2. Data"), "numbered"),
    (5, _cell("code", "keras.utils.set_random_seed(SEED)"), "seeds by other means"),
    (5, _cell("code", "plot()\nplt.show()"), "plt.show()"),
    (5, _cell("code", "STEPS = 10"), "upper-case names ['STEPS']"),
    (6, _cell("md", "## 2. Summary"), "Conclusion"),
])
def test_each_broken_convention_is_reported(index, cell, expected):
    cells = list(GOOD)
    cells[index] = cell
    problems = notebook_problems(_notebook(cells))
    assert any(expected in p for p in problems), problems
