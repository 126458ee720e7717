"""IPython syntax in notebook cells is never a syntax error, and magics that run Python or change
directory keep their effect on the file references."""

from __future__ import annotations

from mlcrawl.crawlers._codeanalysis import CodeAnalyzer

CELLS = ["%matplotlib inline", "!pip install x", "files = !ls data", "df?", "??df", "df.head?",
         "%%writefile out/a.py\nprint(1)", "%%bash\nls -la", "%time x = open('a.txt').read()", "cd ..", "pwd",
         "ls -la", "%load_ext autoreload\n%autoreload 2", "def f():\n    !echo hi\n    return 1",
         "%%time\nimport pandas as pd\npd.read_csv('t.csv')", "x = %env HOME", "%pip install y",
         "%timeit -n 3 open('b.txt')", "%cd data\nopen('z.txt')"]


def analysed(cells: list[str], joined: bool) -> CodeAnalyzer:
    analyzer = CodeAnalyzer()
    if joined:
        analyzer.add_cells(list(enumerate(cells)), parse_all=True)
    else:
        for index, source in enumerate(cells):
            analyzer.add_source(source, index)
    return analyzer


def test_ipython_cells_parse_and_keep_their_references() -> None:
    for joined in (True, False):
        analyzer = analysed(CELLS, joined)
        assert analyzer.facts.problems == []
        assert [(r.raw, r.direction, r.cwd) for r in analyzer.facts.references] == [
            ("out/a.py", "write", None), ("a.txt", "read", None), ("t.csv", "read", ".."),
            ("b.txt", "read", ".."), ("z.txt", "read", "../data")]


def test_a_script_gets_no_automagic() -> None:
    analyzer = CodeAnalyzer()
    analyzer.add_source("cd ..\n")
    assert [p.message for p in analyzer.facts.problems] == ["syntax error: invalid syntax"]
