"""Datasets crawler: Parquet footers, CSV/TSV and JSON Lines schemas, bounded reads, bad input."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import crawl_unit
from mlcrawl.crawlers.datasets import DatasetsCrawler, RecordCounter, consistent_delimiter, sniff_dialect

from mlcrawl.records import DatasetSchema

CRAWLER = DatasetsCrawler()


def schema_of(root: Path, unit: Path, **options) -> tuple[DatasetSchema, list]:
    records, warnings = crawl_unit(CRAWLER, root, unit, **options)
    assert len(records) == 1 and isinstance(records[0], DatasetSchema)
    return records[0], warnings


def corpus_files(corpus: Path, truth: dict, suffix: str) -> list[str]:
    found = sorted(p for p in truth["files"] if p.endswith(suffix))
    assert found, f"no {suffix} file in the corpus"
    return found


def test_parquet_schema_and_rows_match_a_full_pyarrow_read(corpus: Path, truth: dict) -> None:
    for rel in corpus_files(corpus, truth, ".parquet"):
        schema, warnings = schema_of(corpus, corpus / rel)
        table = pq.read_table(corpus / rel)  # the whole file, as the crawler must not
        assert not warnings
        assert (schema.path, schema.format) == (rel, "parquet")
        assert schema.sha256 == truth["files"][rel]["sha256"]
        assert schema.row_count == table.num_rows
        assert [(c["name"], c["type"]) for c in schema.columns] == [
            (f.name, str(f.type)) for f in table.schema
        ]


def test_csv_header_rows_and_types_match_the_csv_module(corpus: Path, truth: dict) -> None:
    for rel in corpus_files(corpus, truth, ".csv"):
        schema, warnings = schema_of(corpus, corpus / rel)
        with open(corpus / rel, newline="") as f:
            rows = [row for row in csv.reader(f) if row]
        assert not warnings, rel
        assert schema.sha256 == truth["files"][rel]["sha256"]
        assert schema.row_count == len(rows) - 1, rel
        assert [c["name"] for c in schema.columns] == rows[0]
        for index, column in enumerate(schema.columns):
            values = [row[index] for row in rows[1:] if row[index]]
            expected = (
                "string"
                if not values
                else "int"
                if all(v.lstrip("-").isdigit() for v in values)
                else ("float" if all(_is_float(v) for v in values) else "string")
            )
            assert column["type"] == expected, (rel, column)
        assert schema.facts["delimiter"] == ","


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_parquet_and_its_csv_twin_agree(corpus: Path) -> None:
    parquet, _ = schema_of(corpus, corpus / "data/processed/iris_clean.parquet")
    text, _ = schema_of(corpus, corpus / "data/processed/iris_clean.csv")
    assert parquet.row_count == text.row_count
    assert [c["name"] for c in parquet.columns] == [c["name"] for c in text.columns]


def test_quoted_newlines_tsv_sniffing_and_nulls(tmp_path: Path) -> None:
    unit = tmp_path / "notes.csv"
    unit.write_text(
        'id;text;flag;score\n1;"line one\nline two";true;0.5\n2;"say ""hi""";false;\n3;plain;TRUE;2\n'
    )
    schema, warnings = schema_of(tmp_path, unit)
    assert not warnings
    assert schema.row_count == 3
    assert schema.facts["delimiter"] == ";" and schema.facts["row_count_method"] == "quote-aware"
    assert schema.columns == [
        {"name": "id", "type": "int", "nullable": False},
        {"name": "text", "type": "string", "nullable": False},
        {"name": "flag", "type": "bool", "nullable": False},
        {"name": "score", "type": "float", "nullable": True},
    ]
    tsv = tmp_path / "t.tsv"
    tsv.write_text("a\tb\n1\tx,y\n")
    schema, _ = schema_of(tmp_path, tsv)
    assert (schema.format, schema.row_count, schema.facts["delimiter"]) == ("tsv", 1, "\t")


def test_row_count_is_streamed_past_the_sample(tmp_path: Path) -> None:
    unit = tmp_path / "big.csv.gz"
    with gzip.open(unit, "wt") as f:
        f.write("x,y\n")
        for i in range(50_000):
            f.write(f'{i},"v\n{i}"\n')
    schema, warnings = schema_of(tmp_path, unit, sample_bytes=4096)
    assert not warnings
    assert schema.row_count == 50_000
    assert schema.facts["compression"] == "gzip" and schema.facts["sampled_rows"] < 1000
    assert schema.sha256 == hashlib.sha256(unit.read_bytes()).hexdigest()


def test_record_counter_across_chunk_boundaries() -> None:
    data = b'a,b\n1,"x\n\ny"\n2,"""q"""\n3,z'
    for size in range(1, len(data) + 1):
        counter = RecordCounter(b"\n", b'"')
        for start in range(0, len(data), size):
            counter.feed(data[start : start + size])
        assert (counter.records(), counter.balanced) == (4, True), size


def test_record_counter_agrees_with_csv_writer_on_random_tables() -> None:
    rnd = random.Random(7)
    alphabet = ["a", "b", ",", '"', "\n", "\r\n", " ", '""']
    for _ in range(200):
        rows = [["".join(rnd.choices(alphabet, k=rnd.randint(0, 6))) for _ in range(3)] for _ in range(30)]
        buffer = io.StringIO()
        csv.writer(buffer).writerows(rows)
        data = buffer.getvalue().encode()
        counter = RecordCounter(b"\n", b'"')
        position = 0
        while position < len(data):
            step = rnd.randint(1, 64)
            counter.feed(data[position : position + step])
            position += step
        assert counter.balanced and counter.records() == len(rows)


def test_header_only_and_headerless_csv(tmp_path: Path) -> None:
    header_only = tmp_path / "h.csv"
    header_only.write_text("a,b,c\n")
    schema, _ = schema_of(tmp_path, header_only)
    assert schema.row_count == 0 and [c["name"] for c in schema.columns] == ["a", "b", "c"]
    numbers = tmp_path / "n.csv"
    numbers.write_text("1,2.5\n3,4\n")
    schema, _ = schema_of(tmp_path, numbers)
    assert schema.row_count == 2 and schema.facts["header"] is False
    assert [c["name"] for c in schema.columns] == ["column_1", "column_2"]


def test_empty_csv_warns_and_records_an_empty_schema(tmp_path: Path) -> None:
    unit = tmp_path / "empty.csv"
    unit.write_bytes(b"")
    schema, warnings = schema_of(tmp_path, unit)
    assert (schema.row_count, schema.columns) == (0, [])
    assert len(warnings) == 1 and "empty" in warnings[0].message


def test_ragged_rows_warn_and_are_counted(tmp_path: Path) -> None:
    unit = tmp_path / "ragged.csv"
    unit.write_text("a,b,c\n1,2,3\n4,5\n6,7,8,9\n10,11,12")
    schema, warnings = schema_of(tmp_path, unit)
    assert schema.row_count == 4
    assert schema.facts["ragged_rows_in_sample"] == 2
    assert any("2 of 4 sampled rows" in w.message for w in warnings)


def test_stray_quote_falls_back_to_line_count(tmp_path: Path) -> None:
    unit = tmp_path / "heights.csv"
    unit.write_text("name,height\nann,5'11\"\nbob,6'0\nCy,5\n")
    schema, warnings = schema_of(tmp_path, unit)
    assert schema.row_count == 3 and schema.facts["row_count_method"] == "newlines"
    assert any("quotes never balance" in w.message for w in warnings)


def test_latin1_csv_is_read(tmp_path: Path) -> None:
    unit = tmp_path / "l1.csv"
    unit.write_bytes("ville,n\nMontréal,1\n".encode("latin-1"))
    schema, _ = schema_of(tmp_path, unit)
    assert schema.facts["encoding"] == "latin-1" and schema.row_count == 1


def test_corrupt_gzip_raises(tmp_path: Path) -> None:
    unit = tmp_path / "bad.csv.gz"
    whole = gzip.compress("".join(f"{i},{i * i}\n" for i in range(5000)).encode())
    unit.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match="bad.csv.gz: corrupt gzip"):
        schema_of(tmp_path, unit)


def test_count_stops_at_max_count_bytes(tmp_path: Path) -> None:
    unit = tmp_path / "long.csv"
    unit.write_text("a\n" + "1\n" * 100_000)
    schema, warnings = schema_of(tmp_path, unit, sample_bytes=1024, max_count_bytes=10_000)
    assert schema.row_count is None
    assert any("max_count_bytes" in w.message for w in warnings)


def test_jsonl_keys_types_and_rows(tmp_path: Path) -> None:
    rows = [
        {"id": 1, "text": "a", "score": 0.5},
        {"id": 2, "text": "b", "score": 1, "extra": [1]},
        {"id": 3, "text": None, "score": 2.5},
    ]
    unit = tmp_path / "d.jsonl"
    unit.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
    schema, warnings = schema_of(tmp_path, unit)
    assert schema.format == "jsonl" and schema.row_count == 4
    assert schema.columns == [
        {"name": "id", "type": "int", "nullable": False},
        {"name": "text", "type": "string", "nullable": True},
        {"name": "score", "type": "float", "nullable": False},
        {"name": "extra", "type": "array", "nullable": True},
    ]
    assert any("1 of 4 sampled lines" in w.message for w in warnings)


def test_corrupt_parquet_raises(tmp_path: Path) -> None:
    unit = tmp_path / "broken.parquet"
    unit.write_bytes(b"PAR1" + b"\x00" * 64)
    with pytest.raises(ValueError, match="broken.parquet: not a readable Parquet file"):
        schema_of(tmp_path, unit)


def test_match() -> None:
    for name in ("a.parquet", "b.CSV", "c.tsv.gz", "d.jsonl", "e.ndjson"):
        assert CRAWLER.match(Path(name), False)
    for name in ("a.json", "b.txt", "c.csv.bak"):
        assert not CRAWLER.match(Path(name), False)
    assert not CRAWLER.match(Path("data.csv"), True)


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_fast_delimiter_agrees_with_sniffer_on_random_unquoted_tables(delimiter: str) -> None:
    rng = random.Random(delimiter)
    for _ in range(50):
        columns = rng.randint(2, 8)
        rows = [[f"c{i}" for i in range(columns)]]
        rows += [[str(rng.choice([rng.randint(-9, 999), rng.random(), "x y", ""])) for _ in range(columns)]
                 for _ in range(rng.randint(2, 40))]
        text = "\n".join(delimiter.join(row) for row in rows) + "\n"
        assert consistent_delimiter(text) == delimiter
        assert csv.Sniffer().sniff(text, delimiters=",;\t|").delimiter == delimiter


def test_fast_delimiter_leaves_quotes_ties_and_single_lines_to_sniffer() -> None:
    assert consistent_delimiter('a,b\n"x,1",2\n') is None
    assert consistent_delimiter("a,b;c\n1,2;3\n") is None  # comma and semicolon both regular
    assert consistent_delimiter("a,b,c\n") is None
    assert sniff_dialect('a;b\n"x;1";2\n"y";3\n', "csv").delimiter == ";"
