import contextlib
import io

import nbformat

from helpers.infra.progress import progress, tidy_outputs


def stream(text, name="stdout"):
    return nbformat.v4.new_output("stream", name=name, text=text)


def test_tidy_outputs_keeps_the_last_state_of_a_redrawn_line():
    cell = nbformat.v4.new_code_cell("run()")
    cell.outputs = [stream("start\n"), stream("\rbar   0%|"), stream("\rbar  50%|"),
                    stream("\rbar 100%|\n"), stream("warning\n", "stderr"), stream("done\n")]
    nb = nbformat.v4.new_notebook(cells=[cell, nbformat.v4.new_markdown_cell("text")])
    tidy_outputs(nb)
    assert [(o.name, o.text) for o in nb.cells[0].outputs] == [
        ("stdout", "start\nbar 100%|\n"), ("stderr", "warning\n"), ("stdout", "done\n")]


def test_a_progress_bar_leaves_one_final_line_once_tidied():
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        for _ in progress(range(50), desc="steps"):
            pass
    raw = buffer.getvalue()
    cell = nbformat.v4.new_code_cell("loop()")
    assert raw.count("\r") >= 2  # drawn at least at the start and at the end
    cell.outputs = [stream(raw)]
    tidy_outputs(nbformat.v4.new_notebook(cells=[cell]))
    lines = cell.outputs[0].text.splitlines()
    assert len(lines) == 1 and lines[0].startswith("steps: 100%") and "50/50" in lines[0]
