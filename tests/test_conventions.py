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


# ---------------------------------------------------------------- course content

COURSE_SECTIONS = ("Conclusion", "Exercises", "References", "About the original study")
LINK = re.compile(r"\]\((https://[^)\s]+)\)")
DECIMAL = re.compile(r"(?<![\w.$])\d+\.\d+(?![\w.])")


def course_problems(nb) -> list[str]:
    """What ``nb`` lacks as course material: learning goals under the title; LaTeX; the
    closing sections Conclusion, Exercises, References, About the original study in that
    order; three to five exercises, each with a hint, one of them 'implement it yourself',
    with solution cells tagged 'solution'; linked references; headline numbers checked
    through helpers.infra.targets."""
    problems = []
    cells = nb.cells
    if "**Learning goals**" not in cells[0].source or "\n- " not in cells[0].source:
        problems.append("cell 0 needs '**Learning goals**' with two or three bullets")
    markdown = [c.source for c in cells if c.cell_type == "markdown"]
    if not any("$$" in m for m in markdown):
        problems.append("the method needs displayed LaTeX equations ($$ ... $$)")
    titles = [t for _, t in SECTION.findall("\n".join(markdown))]
    found = [next((i for i, t in enumerate(titles) if t.startswith(s)), None)
             for s in COURSE_SECTIONS]
    if None in found or found != sorted(found):
        problems.append(f"the last sections must be {', '.join(COURSE_SECTIONS)} in this order, "
                        f"got {titles}")

    def section(name):
        text = "\n".join(markdown)
        start = text.find(f". {name}")
        end = text.find("\n## ", start + 1)
        return text[start:] if end < 0 else text[start:end]

    exercises = re.findall(r"\*\*Exercise \d+[^*]*\*\*(.*?)(?=\*\*Exercise \d+|\Z)",
                           "\n".join(m for m in markdown if "**Exercise" in m), re.S)
    if not 3 <= len(exercises) <= 5:
        problems.append(f"three to five exercises ('**Exercise N ...**'), got {len(exercises)}")
    if any("*Hint:*" not in e for e in exercises):
        problems.append("every exercise needs a '*Hint:*'")
    if "implement it yourself" not in "\n".join(markdown).lower():
        problems.append("one exercise must be 'implement it yourself', with a checking cell")
    if not any("solution" in c.metadata.get("tags", []) for c in cells):
        problems.append("worked solutions go in code cells tagged 'solution'")
    if not LINK.search(section("References")):
        problems.append("the References section needs links (arXiv, DOI or the page)")
    if not any(c.cell_type == "code" and "targets." in c.source for c in cells):
        problems.append("headline numbers are checked with helpers.infra.targets")
    # measured numbers in the conclusion come from the run itself (a table of its recorded
    # metrics); a markdown cell there may quote decimals only when it labels them as
    # numbers of other runs
    in_conclusion = False
    for cell in cells:
        if cell.cell_type != "markdown":
            continue
        heading = SECTION.search(cell.source)
        if heading:
            in_conclusion = heading.group(2).startswith("Conclusion")
        if in_conclusion and DECIMAL.search(cell.source) and "other run" not in cell.source:
            problems.append("the Conclusion types measured numbers by hand "
                            f"({DECIMAL.search(cell.source).group(0)}); show the run's recorded "
                            "metrics, and label numbers of other runs as such")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_course_material(path):
    assert course_problems(nbformat.read(path, as_version=4)) == []


COURSE_GOOD = [
    _cell("md", "# A study\n\nWhat question it answers.\n\n**Learning goals**\n- one\n- two"),
    *GOOD[1:6],
    _cell("md", "## 2. Model\n\n$$p(x) = \\int p(x|z) p(z) dz$$"),
    _cell("code", "targets.at_most('loss', loss, 160)"),
    _cell("md", "## 3. Conclusion\n\nWhat we learned."),
    _cell("md", "Another run, not this one (other runs: seed 1): a loss of 166.0 nats."),
    _cell("md", "## 4. Exercises\n\n**Exercise 1 (predict).** Change it. *Hint:* think.\n\n"
                "**Exercise 2.** More. *Hint:* look.\n\n**Exercise 3 (implement it "
                "yourself).** Write it. *Hint:* a sum."),
    _cell("code", "def mine(x):\n    return x", ["solution"]),
    _cell("md", "## 5. References\n\n- Kingma & Welling (2013). "
                "[arXiv:1312.6114](https://arxiv.org/abs/1312.6114)."),
    _cell("md", "## 6. About the original study\n\nWhat it did and what was fixed."),
]


def test_course_notebook_passes_and_each_gap_is_reported():
    assert notebook_problems(_notebook(COURSE_GOOD)) == []
    assert course_problems(_notebook(COURSE_GOOD)) == []
    gaps = [
        (0, _cell("md", "# A study\n\nNo goals."), "Learning goals"),
        (6, _cell("md", "## 2. Model\n\nNo maths."), "LaTeX"),
        (7, _cell("code", "assert loss < 160"), "targets"),
        (10, _cell("md", "## 4. Exercises\n\n**Exercise 1.** Only one. *Hint:* x."),
         "three to five"),
        (10, _cell("md", "## 4. Exercises\n\n**Exercise 1.** A. *Hint:* x.\n\n**Exercise 2.** B."
                        "\n\n**Exercise 3 (implement it yourself).** C. *Hint:* z."), "Hint"),
        (11, _cell("code", "def mine(x):\n    return x"), "solution"),
        (12, _cell("md", "## 5. References\n\n- Kingma & Welling (2013)."), "links"),
        (13, _cell("md", "## 6. Summary\n\nNo about cell."), "About the original study"),
        (8, _cell("md", "## 3. Conclusion\n\nThe loss was 166.0 nats."), "by hand"),
    ]
    for index, cell, expected in gaps:
        cells = list(COURSE_GOOD)
        cells[index] = cell
        problems = course_problems(_notebook(cells))
        assert any(expected in p for p in problems), (expected, problems)


def test_course_page_lists_every_notebook_in_reading_order():
    root = NOTEBOOKS[0].parent
    page = (root / "index.md").read_text()
    linked = re.findall(r"\]\((\d\d_[\w]+\.ipynb)\)", page)
    assert linked == [p.name for p in NOTEBOOKS]  # each once, in the numbered order
    for name in linked:
        assert (root / name).exists()
    for heading in ("## Prerequisites", "## Reading order", "## Bibliography"):
        assert heading in page
    rows = [line for line in page.splitlines() if re.match(r"\| \d\d \|", line)]
    assert len(rows) == len(NOTEBOOKS)
    for row in rows:  # measured fast- and full-mode times in every row
        assert len(re.findall(r"\d+ (?:s|min)\b", row)) == 2, row
    assert "{" not in page and len(LINK.findall(page.split("## Bibliography")[1])) >= 10
    readme = (root.parent / "README.md").read_text()
    assert "](notebooks/index.md)" in readme


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_papermill_reads_every_parameter(path):
    # `papermill --help-notebook` lists the parameters with their comments as help; a comment
    # holding "=" (such as ">= 0") hides its line from papermill's parser
    import papermill

    nb = nbformat.read(path, as_version=4)
    cell = next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assigned = set(re.findall(r"^([A-Z_][A-Z0-9_]*)\s*=", cell, re.M))
    assert assigned - set(papermill.inspect_notebook(str(path))) == set()


# ---------------------------------------------------------------- teaching text and exercises

MAX_CELL_WORDS = 250
MAX_TEACHING_WORDS = 2200
NOT_TEACHING = ("Exercises", "References", "About the original study",
                "Notes on this implementation")


def tokens(markdown: str) -> int:
    """Everything a reader scans: words, numbers and the symbols of the maths, each run of
    letters or digits one (the per-cell limit counts these)."""
    return len(re.findall(r"\w+", markdown))


def words(markdown: str) -> int:
    """Words of prose: displayed and inline maths count as one word, link targets as none."""
    text = re.sub(r"\$\$.*?\$\$", " ", markdown, flags=re.S)
    text = re.sub(r"\$[^$]*\$", " x ", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    return len(re.findall(r"[A-Za-z0-9][\w'’-]*", text))


def _defined(source: str) -> set[str]:
    """Names a cell binds in the notebook's namespace: assignments and loop variables at any
    depth outside functions, classes and comprehensions; functions, classes and imports
    (not ``_``, the name for a value nobody reads)."""
    names = set()

    def visit(node):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            return
        if isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp,
                             ast.GeneratorExp)):
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return names - {"_"}


def teaching_problems(nb) -> list[str]:
    """Cells over 250 words (maths symbols counted, see ``tokens``), teaching text over 2,200
    words of prose (maths one word, see ``words``; all markdown but the exercises,
    references, about and notes sections), solution cells that rebind a name another cell
    defines (Run All would overwrite the reader's code with the solution's), and solution cells
    that end with a comment (a conclusion typed instead of printed from the run)."""
    problems, section, teaching = [], None, 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        heading = SECTION.search(cell.source)
        if heading:
            section = heading.group(2)
        count = tokens(cell.source)
        if count > MAX_CELL_WORDS:
            problems.append(f"markdown cell {i} has {count} words (at most {MAX_CELL_WORDS})")
        if section is None or not section.startswith(NOT_TEACHING):
            teaching += words(cell.source)
    if teaching > MAX_TEACHING_WORDS:
        problems.append(f"{teaching} words of teaching text (at most {MAX_TEACHING_WORDS})")
    # every numbered section before the conclusion ends with its one-line takeaway
    starts = [i for i, c in enumerate(nb.cells)
              if c.cell_type == "markdown" and SECTION.search(c.source)]
    for start, end in zip(starts, [*starts[1:], len(nb.cells)][:len(starts)], strict=True):
        title = SECTION.search(nb.cells[start].source).group(2)
        if title.startswith(("Conclusion", *NOT_TEACHING)):
            break
        if not nb.cells[end - 1].source.startswith("**Takeaway:**"):
            problems.append(f"section '{title}' must end with a '**Takeaway:**' cell")
    # one derivation on paper, its worked answer collapsed in the next cell
    derivations = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"
                   and re.search(r"\*\*Exercise \d+ \(derive it on paper\)\.\*\*", c.source)]
    if not derivations:
        problems.append("one exercise must be '**Exercise N (derive it on paper).**'")
    for i in derivations:
        answer = nb.cells[i + 1] if i + 1 < len(nb.cells) else None
        if (answer is None or answer.cell_type != "markdown"
                or not answer.source.lstrip().startswith("<details>")
                or "</details>" not in answer.source):
            problems.append(f"the derivation of cell {i} needs its worked answer collapsed in "
                            "<details> in the next cell")
    plain = set()
    for cell in nb.cells:
        if cell.cell_type == "code" and "solution" not in cell.metadata.get("tags", []):
            plain |= _defined(_code(cell))
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "solution" in cell.metadata.get("tags", []):
            clash = sorted(_defined(_code(cell)) & plain)
            if clash:
                problems.append(f"solution cell {i} rebinds {', '.join(clash)}, defined by "
                                "another cell: give the solution its own names")
            # a conclusion typed as a closing comment can contradict the run; print it instead
            lines = [line for line in cell.source.splitlines() if line.strip()]
            if lines and lines[-1].lstrip().startswith("#"):
                problems.append(f"solution cell {i} ends with a comment: print the conclusion "
                                "from what the run computed")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_teaching_text_and_exercises(path):
    assert teaching_problems(nbformat.read(path, as_version=4)) == []


def test_teaching_problems_are_reported():
    def notebook(*cells):
        return _notebook(list(cells))

    derivation = [_cell("md", "**Exercise 2 (derive it on paper).** Show it. *Hint:* a sum."),
                  _cell("md", "<details>\n<summary>Worked answer</summary>\n\nIt is.\n\n"
                              "</details>")]
    good = notebook(
        _cell("md", "## 1. Data\n\nA short paragraph about $x$ and [a link](https://a.b)."),
        _cell("md", "**Takeaway:** what to remember."),
        _cell("md", "## 2. Exercises\n\n**Exercise 1 (implement it yourself).** Write it."),
        _cell("code", "def my_kl(m, v):\n    raise NotImplementedError"),
        _cell("code", "def kl_solution(m, v):\n    return m\n\n\ncheck_kl(kl_solution)",
              ["solution"]),
        *derivation,
        _cell("md", "## 3. References\n\n" + "word " * 240),
    )
    assert teaching_problems(good) == []
    without_takeaway = notebook(*good.cells[:1], *good.cells[2:])
    assert any("'Data' must end with a '**Takeaway:**'" in p
               for p in teaching_problems(without_takeaway))
    open_answer = notebook(*good.cells[:6], _cell("md", "It is, because..."), *good.cells[7:])
    assert any("collapsed" in p for p in teaching_problems(open_answer))
    no_derivation = notebook(*good.cells[:5], *good.cells[7:])
    assert any("derive it on paper" in p for p in teaching_problems(no_derivation))
    assert words("one $a + b$ two $$\\sum_i x_i$$ [three](https://x.y/z)") == 4
    long_cell = notebook(_cell("md", "## 1. Data\n\n" + "word " * 251), *derivation)
    assert any("words (at most 250)" in p for p in teaching_problems(long_cell))
    # 9 cells of 245 words: none too long, too many together; the same under Exercises is fine
    prose = [_cell("md", f"## {k}. Part\n\n" + "word " * 245) for k in range(1, 10)]
    assert any("teaching text" in p for p in teaching_problems(notebook(*prose)))
    exercises = [_cell("md", "## 1. Exercises\n\n" + "word " * 245)] + [
        _cell("md", "word " * 245) for _ in range(8)]
    assert teaching_problems(notebook(*exercises, *derivation)) == []
    for solution in ("def my_kl(m, v):\n    return m",  # replaces the reader's stub
                     "for my_kl in range(3):\n    pass",
                     "import numpy as my_kl"):
        clashing = notebook(_cell("code", "def my_kl(m, v):\n    raise NotImplementedError"),
                            _cell("code", solution, ["solution"]), *derivation)
        assert any("rebinds my_kl" in p for p in teaching_problems(clashing)), solution
    typed = notebook(_cell("code", "gap = 3.0\nprint(gap)\n# the gap is tens of nats",
                           ["solution"]), *derivation)
    assert any("ends with a comment" in p for p in teaching_problems(typed))
    printed = notebook(_cell("code", "# the gap, as this run measured it:\nprint(3.0)",
                             ["solution"]), *derivation)
    assert teaching_problems(printed) == []


# ---------------------------------------------------------------- checks cells

CHECKED_BY = ("targets", "recorder")  # helpers.infra.targets and the metrics recorder
FIGURE = re.compile(r"\bplt\.|\.plot\(|\bdisplay\(")


def _checks_run(source: str) -> list[str]:
    """What a cell checks outside function and class bodies (a checker function's asserts
    belong to it): asserts, calls of ``targets.*`` and ``recorder.*``, and the
    ``np.testing.assert_*`` comparisons of the page's code with the helpers."""
    found = []

    def visit(node):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            return
        if isinstance(node, ast.Assert):
            found.append("assert")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name) and owner.id in CHECKED_BY:
                found.append(f"{owner.id}.{node.func.attr}")
            elif (node.func.attr.startswith("assert_") and isinstance(owner, ast.Attribute)
                  and owner.attr == "testing" and isinstance(owner.value, ast.Name)
                  and owner.value.id in ("np", "numpy")):
                found.append(f"np.testing.{node.func.attr}")
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return found


def checks_problems(nb) -> list[str]:
    """Checks (asserts, targets, recorder calls, np.testing comparisons) sit in cells tagged
    'checks', never in teaching cells (solution cells aside); at most one such cell per
    numbered section; and it holds nothing but the checks and the lines they need: it opens
    with a comment saying what it checks and draws no figure (plt., .plot(, display()."""
    problems, section, tagged = [], "before the first section", {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            heading = SECTION.search(cell.source)
            section = heading.group(2) if heading else section
            continue
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.get("tags", [])
        where = f"cell {i} (section '{section}')"
        if "checks" in tags:
            tagged.setdefault(section, []).append(i)
            if not cell.source.startswith("#"):
                problems.append(f"checks {where} must open with a one-line comment saying what "
                                "it checks")
            drawing = FIGURE.search(cell.source)
            if drawing:
                problems.append(f"checks {where} draws or displays ({drawing.group(0)}): it "
                                "holds only checks; the figure goes in a teaching cell")
        elif "solution" not in tags:
            found = _checks_run(_code(cell))
            if found:
                problems.append(f"{where} runs checks ({', '.join(dict.fromkeys(found))}) but is "
                                "not tagged 'checks': move them to the section's checks cell")
    for title, cells in tagged.items():
        if len(cells) > 1:
            problems.append(f"section '{title}' has {len(cells)} cells tagged 'checks' "
                            f"(cells {cells}): one per section at most")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_checks_are_grouped_in_tagged_cells(path):
    assert checks_problems(nbformat.read(path, as_version=4)) == []


def test_checks_problems_are_reported():
    def notebook(*cells):
        return _notebook(list(cells))

    checks = _cell("code", "# Checks: the data's size, recorded\nn = len(x)\n"
                           "recorder.record('n', n)\nif FAST:\n    assert n > 2\n"
                           "targets.at_least('points', n, 3);", ["checks"])
    good = notebook(
        _cell("md", "## 1. Data\n\nWhat comes."),
        _cell("code", "x = load(SEED)\nfig = plot(x);\n%time y = 1"),
        _cell("code", "def check(f):\n    assert f(1) == 1  # a checker's own assert\n\n\n"
                      "check(mine)"),
        checks,
        _cell("md", "**Takeaway:** what to remember."),
        _cell("md", "## 2. Conclusion\n\nWhat we learned."),
        _cell("code", "record = recorder.payload\npd.Series(record['metrics'])"),
        _cell("code", "assert mine(2) == 2", ["solution"]),
    )
    assert checks_problems(good) == []
    teaching = {
        "assert": "x = load(SEED)\nassert len(x) == 3",
        "targets.at_most": "x = load(SEED)\nif not FAST:\n    targets.at_most('loss', x, 1)",
        "recorder.record": "x = load(SEED)\n_ = recorder.record('n', len(x))",
        "np.testing.assert_allclose": "for a, b in pairs:\n"
                                      "    np.testing.assert_allclose(a, b)",
    }
    for found, source in teaching.items():
        cells = list(good.cells)
        cells[1] = _cell("code", source)
        problems = checks_problems(notebook(*cells))
        assert any(f"cell 1 (section 'Data') runs checks ({found})" in p
                   and "not tagged 'checks'" in p for p in problems), (found, problems)
    twice = notebook(*good.cells[:3], checks, checks, *good.cells[4:])
    assert any("section 'Data' has 2 cells tagged 'checks' (cells [3, 4])" in p
               for p in checks_problems(twice))
    for drawing in ("plt.hist(x)", "ax.plot(x)", "display(table)"):
        cells = list(good.cells)
        cells[3] = _cell("code", f"# Checks: the size\nassert len(x) == 3\n{drawing}", ["checks"])
        assert any("checks cell 3 (section 'Data') draws" in p
                   for p in checks_problems(notebook(*cells))), drawing
    cells = list(good.cells)
    cells[3] = _cell("code", "assert len(x) == 3", ["checks"])
    assert any("checks cell 3 (section 'Data') must open with a one-line comment" in p
               for p in checks_problems(notebook(*cells)))


# the two longest studies say what every student reads and what can wait
@pytest.mark.parametrize("stem", ["03_covariance_heatmaps_vae_vs_ae", "05_ising_vae"])
def test_long_notebooks_mark_a_core_path_and_going_further_parts(stem):
    nb = nbformat.read(next(p for p in NOTEBOOKS if p.stem == stem), as_version=4)
    assert "**Core path:**" in nb.cells[0].source
    marked = [i for i, c in enumerate(nb.cells)
              if c.cell_type == "markdown" and "(going further)" in c.source]
    assert marked, "no part is marked '(going further)'"
    assert "*going further*" in nb.cells[0].source  # the title says what the mark means


# ---------------------------------------------------------------- the test set is touched once
def test_set_problems(nb) -> list[str]:
    """Fits that watch the test set while training (``validation_data`` built from a name
    with ``test`` in it): its numbers would then steer training or the choices made from the
    curves, and the test set is meant to be scored once, at the end."""
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(_code(cell))):
            if isinstance(node, ast.keyword) and node.arg == "validation_data":
                names = {n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)}
                names |= {n.attr for n in ast.walk(node.value) if isinstance(n, ast.Attribute)}
                if any("test" in name for name in names):
                    problems.append(f"cell {i} trains with the test set as validation data")
    return problems


test_set_problems.__test__ = False  # a helper, not a test


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_training_never_watches_the_test_set(path):
    assert test_set_problems(nbformat.read(path, as_version=4)) == []


def test_watching_the_test_set_is_reported():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("fit(model, x, validation_data=(x_val,))"),
                nbformat.v4.new_code_cell("fit(model, x, validation_data=(data.x_test,))"),
                nbformat.v4.new_code_cell("fit(model, x, epochs=2,\n"
                                          "    validation_data=(x_test, y_test))")]
    assert test_set_problems(nb) == ["cell 1 trains with the test set as validation data",
                                     "cell 2 trains with the test set as validation data"]
