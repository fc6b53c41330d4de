"""What a reader sees in each executed notebook of this run (those the site is built from):
every figure once, no value that nobody meant to print, and each untouched exercise reported as
"not implemented yet" (Run All goes on past it)."""

import ast

import nbformat
import pytest

from helpers.infra.config import build_dir
from helpers.infra.outputs import output_problems
from helpers.infra.site import course_notebooks


def executed(name):
    """This run's executed copy of the notebook ``name``."""
    path = build_dir("notebooks") / name
    if not path.exists():
        pytest.fail(f"No executed copy of {name} in {path.parent}: run the notebooks first")
    return nbformat.read(path, as_version=4)


@pytest.mark.parametrize("name", [nb.name for nb in course_notebooks()])
def test_every_figure_once_and_no_leaked_values(name):
    problems = output_problems(executed(name))
    assert not problems, f"{name}:\n" + "\n".join(problems)


def stub_problems(nb) -> list[str]:
    """The exercises' stubs (functions outside solution cells that raise
    ``NotImplementedError``) whose checker did not say "<name>: not implemented yet" in the
    executed notebook: Run All with the exercises untouched must report them and go on."""
    stubs = []
    for cell in nb.cells:
        if cell.cell_type != "code" or "solution" in cell.metadata.get("tags", []):
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:  # IPython magics
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and any(
                    isinstance(raised, ast.Raise) and "NotImplementedError" in
                    ast.unparse(raised.exc or ast.Constant(None))
                    for raised in ast.walk(node)):
                stubs.append(node.name)
    if not stubs:
        return ["no exercise stub (a function that raises NotImplementedError)"]
    printed = "".join(output.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                      for output in cell.get("outputs", []) if output.output_type == "stream")
    return [f"{name}: its checker did not print '{name}: not implemented yet'"
            for name in stubs if f"{name}: not implemented yet" not in printed]


@pytest.mark.parametrize("name", [nb.name for nb in course_notebooks()])
def test_untouched_exercises_report_not_implemented_yet(name):
    problems = stub_problems(executed(name))
    assert not problems, f"{name}:\n" + "\n".join(problems)


def test_stub_problems_on_a_small_notebook():
    def notebook(printed):
        stub = nbformat.v4.new_code_cell("def my_f(x):\n    raise NotImplementedError('yours')")
        check = nbformat.v4.new_code_cell("check_f(my_f)")
        check.outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)]
        solution = nbformat.v4.new_code_cell("def f_solution(x):\n    raise NotImplementedError",
                                             metadata={"tags": ["solution"]})
        return nbformat.v4.new_notebook(cells=[stub, check, solution])

    assert stub_problems(notebook("my_f: not implemented yet\n")) == []
    assert stub_problems(notebook("my_f matches\n")) == [
        "my_f: its checker did not print 'my_f: not implemented yet'"]
    assert stub_problems(nbformat.v4.new_notebook(cells=[])) == [
        "no exercise stub (a function that raises NotImplementedError)"]
