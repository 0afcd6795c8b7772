"""Each notebook is committed twice, and the pair must agree.

``notebooks/NN_name.py`` (jupytext py:percent, the source people edit and review) and
``notebooks/NN_name.ipynb`` (what Colab opens from the repository) must hold the same cells, and
the ``.ipynb`` must carry no outputs or execution counts. After editing a ``.py``, update its
``.ipynb`` with ``jupytext --sync notebooks/*.py`` (keeps the cell ids, so diffs stay small); an
``.ipynb`` that was executed and saved is rewritten without outputs by
``jupytext --to ipynb notebooks/NN_name.py``.
"""

from pathlib import Path

import jupytext
import nbformat
import pytest

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
PY_FILES = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.py"))
SYNC = "update the .ipynb from its .py: `jupytext --sync notebooks/*.py`"
STRIP = "rewrite the .ipynb from its .py without outputs: `jupytext --to ipynb notebooks/NN_name.py`"


def cells(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def test_every_notebook_is_a_pair():
    ipynbs = {p.stem for p in NOTEBOOKS_DIR.glob("*.ipynb")}
    pys = {p.stem for p in PY_FILES}
    assert len(pys) >= 4, f"expected the four numbered notebooks in {NOTEBOOKS_DIR}, found {sorted(pys)}"
    assert ipynbs == pys, f"unpaired notebooks: .ipynb only {sorted(ipynbs - pys)}, .py only {sorted(pys - ipynbs)}; {SYNC}"


@pytest.mark.parametrize("py", PY_FILES, ids=lambda p: p.stem)
def test_ipynb_matches_its_py(py):
    ipynb = py.with_suffix(".ipynb")
    want = cells(jupytext.read(py, fmt="py:percent"))
    got = cells(nbformat.read(ipynb, as_version=4))
    for i, (w, g) in enumerate(zip(want, got)):
        assert w == g, f"{ipynb.name} cell {i} differs from {py.name}: {SYNC}\n--- .py:\n{w[1][:300]}\n--- .ipynb:\n{g[1][:300]}"
    assert len(want) == len(got), f"{ipynb.name} has {len(got)} cells, {py.name} has {len(want)}: {SYNC}"


@pytest.mark.parametrize("py", PY_FILES, ids=lambda p: p.stem)
def test_ipynb_is_committed_without_outputs(py):
    nb = nbformat.read(py.with_suffix(".ipynb"), as_version=4)
    for i, c in enumerate(nb.cells):
        if c.cell_type == "code":
            assert not c.outputs, f"{py.stem}.ipynb cell {i} carries outputs; {STRIP}"
            assert c.execution_count is None, f"{py.stem}.ipynb cell {i} has execution_count {c.execution_count}; {STRIP}"


@pytest.mark.parametrize("py", PY_FILES, ids=lambda p: p.stem)
def test_notebook_opens_with_what_it_reads_and_writes(py):
    first = jupytext.read(py, fmt="py:percent").cells[0]
    assert first.cell_type == "markdown", f"{py.name} must open with a markdown cell"
    assert "**Reads:**" in first.source and "**Writes:**" in first.source, (
        f"{py.name}'s first cell must say what the notebook reads and writes (**Reads:** ... **Writes:** ...)"
    )
