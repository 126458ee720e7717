"""Static code analysis: IPython masking, imports, constant folding and I/O call directions."""

from __future__ import annotations

import ast

import pytest
from mlcrawl.crawlers._codeanalysis import (
    analyze_sources,
    mask_ipython,
    open_direction,
    parse_literal_assignments,
)


def refs(*sources: str) -> set[tuple[str, str]]:
    """(raw, direction) of every reference found in ``sources`` analysed as consecutive cells."""
    facts = analyze_sources(enumerate(sources))
    return {(r.raw, r.direction) for r in facts.references}


def test_constants_flow_across_cells_in_order():
    found = refs('DATA_DIR = "data"\nimport pandas as pd',
                 'df = pd.read_csv(f"{DATA_DIR}/train.csv")',
                 'DATA_DIR = "other"\ndf.to_parquet(DATA_DIR + "/out.parquet")')
    assert found == {("data/train.csv", "read"), ("other/out.parquet", "write")}


def test_path_expressions_fold():
    found = refs("import os\nfrom pathlib import Path\nimport numpy as np\nROOT = Path('runs')",
                 "np.save((ROOT / 'exp1' / 'w').with_suffix('.npy'), x)",
                 "os.path.join('data', 'raw', 'x.csv')\nnp.loadtxt(os.path.join('data', 'raw', 'x.csv'))",
                 "(ROOT / 'notes.txt').write_text('hi')\nROOT.joinpath('a.json').read_text()",
                 "np.load('scores_%s.npy' % 'val')")
    assert found == {("runs/exp1/w.npy", "write"), ("data/raw/x.csv", "read"),
                     ("runs/notes.txt", "write"), ("runs/a.json", "read"), ("scores_val.npy", "read")}


@pytest.mark.parametrize(("mode", "direction"), [
    (None, "read"), ("'r'", "read"), ("'rb'", "read"), ("'w'", "write"), ("'ab'", "write"),
    ("'x'", "write"), ("'r+'", "unknown"), ("m", "unknown"),
])
def test_open_mode_sets_direction(mode, direction):
    call = f"open('f.txt', {mode})" if mode else "open('f.txt')"
    assert refs(call) == {("f.txt", direction)}
    assert open_direction("w+b") == "write"


def test_library_calls_and_their_directions():
    source = """
import joblib, torch, pickle, json, yaml, shutil, mlflow
import papermill as pm
import matplotlib.pyplot as plt
from PIL import Image
joblib.dump(m, "m.joblib"); joblib.load("m2.joblib")
torch.save(sd, "w.pt"); torch.load("w0.pt")
pickle.dump(obj, open("o.pkl", "wb")); json.load(open("cfg.json"))
with open("out.yaml", "w") as f:
    yaml.safe_dump(d, f)
img = Image.open("in.png"); img.save("out.png")
plt.savefig("fig.pdf"); fig.savefig("fig2.svg")
mlflow.log_artifact("report.html")
shutil.move("a.bin", "b.bin")
pm.execute_notebook("t.ipynb", "o.ipynb", parameters={"x": 1})
from safetensors.torch import save_file
save_file(tensors, filename="w.safetensors"); torch.jit.save(m, "j.pt"); model.save_pretrained("hf_out")
"""
    assert refs(source) == {
        ("m.joblib", "write"), ("m2.joblib", "read"), ("w.pt", "write"), ("w0.pt", "read"),
        ("o.pkl", "write"), ("cfg.json", "read"), ("out.yaml", "write"), ("in.png", "read"),
        ("out.png", "write"), ("fig.pdf", "write"), ("fig2.svg", "write"), ("report.html", "read"),
        ("a.bin", "read"), ("b.bin", "write"), ("t.ipynb", "read"), ("o.ipynb", "write"),
        ("w.safetensors", "write"), ("j.pt", "write"), ("hf_out", "write"),
    }


def test_loops_over_literals_give_every_value_and_params_shadow_constants():
    found = refs("import torch\nfor lr in [0.01, 0.1]:\n    torch.save(m, f'models/lr{lr:.2f}.pt')",
                 "path = 'global.csv'\ndef load(path):\n    return open(path)\nopen(path)")
    assert found == {("models/lr0.01.pt", "write"), ("models/lr0.10.pt", "write"), ("global.csv", "read")}


def test_unknown_values_give_no_reference_and_are_never_evaluated():
    found = refs("import pandas as pd\npd.read_csv(cfg.path)\npd.read_csv(__import__('os').getcwd())",
                 "x = input()\nopen(x)")
    assert found == set()


def test_magics_are_masked_line_for_line():
    source = ("%matplotlib inline\nfiles = !ls data\n  !pip install x\n  !pip list\nmodel?\n??model\n"
              "open('a.txt')\n%time \\\n  y = 1")
    masked = mask_ipython(source)
    assert masked.text.count("\n") == source.count("\n")
    ast.parse(masked.text)
    facts = analyze_sources([(0, source)])
    assert [(r.raw, r.line) for r in facts.references] == [("a.txt", 7)]
    assert facts.problems == []


def test_cell_magics_python_body_kept_others_skipped_writefile_is_a_write():
    found = refs("%%time\nopen('timed.txt', 'w')", "%%bash\necho > shell.txt\nopen('nope')",
                 "%%writefile helper.py\nprint(1)", "%run ../scripts/prep.py --fast")
    assert found == {("timed.txt", "write"), ("helper.py", "write"), ("../scripts/prep.py", "read")}


def test_syntax_error_is_reported_and_other_cells_go_on():
    facts = analyze_sources([(0, "import os\nx = (1,"), (1, "import numpy\nopen('ok.txt')")])
    assert [p.cell for p in facts.problems] == [0]
    assert "syntax error" in facts.problems[0].message
    assert facts.imports == ["numpy"]
    assert [r.raw for r in facts.references] == ["ok.txt"]


def test_imports_are_module_names_without_relative_ones():
    facts = analyze_sources([(0, "import os.path, numpy as np\nfrom sklearn.metrics import f1_score\n"
                                 "from . import sibling\ndef f():\n    import torch")])
    assert facts.imports == ["os.path", "numpy", "sklearn.metrics", "torch"]


def test_tool_locations():
    source = """
import hydra, wandb, mlflow
from torch.utils.tensorboard import SummaryWriter
from lightning.pytorch.loggers import CSVLogger
mlflow.set_tracking_uri("sqlite:///mlflow.db")
SummaryWriter(log_dir="tb/run1")
wandb.init(project="p")
CSVLogger(save_dir="logs")
@hydra.main(config_path="conf", config_name="cfg")
def main(cfg):
    pass
"""
    facts = analyze_sources([(None, source)])
    found = {(r.raw, r.direction, r.relative_to_source) for r in facts.references}
    assert found == {("mlflow.db", "write", False), ("tb/run1", "write", False), ("./wandb", "write", False),
                     ("logs/lightning_logs", "write", False), ("conf/cfg.yaml", "read", True),
                     ("outputs", "write", False), ("multirun", "write", False)}


def test_parameters_are_literals_only():
    literals, expressions, problem = parse_literal_assignments(
        "# Parameters\nC = 1.0\nname: str = 'x'\nlayers = [1, 2]\nseed = np.random.randint(3)\n%time z = 1")
    assert literals == {"C": 1.0, "name": "x", "layers": [1, 2]}
    assert expressions == {"seed": "np.random.randint(3)"}
    assert problem is None
    assert parse_literal_assignments("x = (")[2] is not None


def test_cells_that_name_no_file_are_not_parsed_unless_asked():
    cells = [(0, "BASE = 'data'"), (1, "DIR = BASE + '/raw'\nunused = 1"), (2, "a, (b, c) = 1, (2, 3)"),
             (3, "for i in range(3):\n    broken("), (4, "open(f'{DIR}/x.csv')")]
    facts = analyze_sources(cells)
    assert [r.raw for r in facts.references] == ["data/raw/x.csv"]
    assert facts.problems == []
    from mlcrawl.crawlers._codeanalysis import CodeAnalyzer, _assigned_names
    analyzer = CodeAnalyzer()
    analyzer.add_cells(cells, parse_all=True)
    assert [p.cell for p in analyzer.facts.problems] == [3]
    assert _assigned_names(cells[2][1]) == {"a", "b", "c"}
    assert _assigned_names("model = fit(X, lr=lr)\nalias = BASE\nout = Path(BASE) / name") == {"alias", "out"}
    assert _assigned_names("for k in ['a']:\n    x += 1\nwith open(p) as (f, g):\n  y: int = 2") \
        >= {"k", "x", "f", "g", "y"}


@pytest.mark.parametrize("source", [
    "x = " + " + ".join(['"a"'] * 20000) + "\nopen(x)",  # too deep for the parser
    "x = " + " + ".join(['"a"'] * 600) + "\nopen(x)",  # parses, too deep to fold
    "open(" + "(" * 300 + '"a"' + ")" * 300 + ")",
])
def test_absurd_nesting_is_a_problem_not_a_crash(source):
    facts = analyze_sources([(0, source), (1, "open('fine.txt')")])
    assert facts.problems and facts.problems[0].cell == 0
    assert ("fine.txt", "read") in {(r.raw, r.direction) for r in facts.references}
