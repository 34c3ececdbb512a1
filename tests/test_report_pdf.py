"""calibrate.report.pdf: the report's sections as an A4 PDF (matplotlib only), read back
with pypdf (an independent parser) and with a regular expression over the raw bytes; and
`calibrate report --pdf`, written with the HTML and the JSON as one unit."""

import base64
import json
import re
import subprocess
import sys

import matplotlib
import numpy as np
import pytest
from conftest import make_logits
from matplotlib.figure import Figure

from calibrate.report.html import _png
from calibrate.report.pdf import PAGE_H, PAGE_W, layout_pages, render_pdf

pypdf = pytest.importorskip("pypdf")


def _figure(w=4.0, h=3.0, label="x"):
    fig = Figure(figsize=(w, h))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], label=label)
    return _png(fig, f"figure {label}", f"caption of {label}", dpi=50)


def _sections():
    wide = {"header": ["prediction"] + [f"metric number {j}" for j in range(14)],
            "rows": [{"cells": [{"text": f"model{i}"}] + [{"text": f"{i + j / 100:.4f}", "ci": f"[{j}.01, {j}.99]",
                                                          "cls": "better" if j == 3 else ""} for j in range(14)]}
                     for i in range(3)], "caption": "A wide table"}
    long = {"header": ["row", "value"], "rows": [{"cells": [{"text": f"item{i:03d}"}, {"text": f"{i * i}"}]}
                                                 for i in range(150)]}
    return [
        {"id": "summary", "title": "Summary Alpha", "summary": [("data", "test.npz"), ("n", "2,000")], "lead": True},
        {"id": "text", "title": "Section Beta", "paragraphs": ["word " * 400, "a $math$ sign stays text"],
         "tables": [wide]},
        {"id": "figs", "title": "Section Gamma", "figures": [_figure(label="one"), _figure(6, 9, "two")]},
        {"id": "long", "title": "Section Delta", "tables": [long]},
        {"id": "hidden", "title": "Section Epsilon", "collapsed": True, "paragraphs": ["collapsedtextmarker"],
         "pre": "preformatted line\n" * 3},
    ]


@pytest.fixture(scope="module")
def pdf_bytes():
    return render_pdf("Report Title", _sections(), subtitle="the subtitle")


def _reader(data):
    import io

    return pypdf.PdfReader(io.BytesIO(data))


def _text(data):
    return "\n".join(p.extract_text() for p in _reader(data).pages)


def test_is_a_pdf_with_a4_pages(pdf_bytes):
    assert pdf_bytes.startswith(b"%PDF-") and pdf_bytes.rstrip().endswith(b"%%EOF")
    r = _reader(pdf_bytes)
    n_pages = len(layout_pages("Report Title", _sections(), subtitle="the subtitle"))
    assert len(r.pages) == n_pages >= 3  # the 150-row table and the tall figure need pages of their own
    assert len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf_bytes)) == n_pages  # counted in the raw bytes too
    for p in r.pages:
        assert float(p.mediabox.width) == pytest.approx(PAGE_W * 72) and float(p.mediabox.height) == pytest.approx(
            PAGE_H * 72)


def test_two_renders_are_byte_identical(pdf_bytes):
    assert render_pdf("Report Title", _sections(), subtitle="the subtitle") == pdf_bytes
    assert b"CreationDate" not in pdf_bytes


def test_every_title_paragraph_and_cell_is_in_the_text(pdf_bytes):
    text = _text(pdf_bytes)
    for s in ("Report Title", "the subtitle", "Summary Alpha", "Section Beta", "Section Gamma", "Section Delta",
              "Section Epsilon", "collapsedtextmarker", "preformatted line", "a $math$ sign stays text",
              "caption of one", "test.npz"):
        assert s in text, s
    for s in _sections():
        for t in s.get("tables", []):
            for r in t["rows"]:
                for c in r["cells"]:
                    assert c["text"] in text
                    if c.get("ci"):
                        assert c["ci"] in text
    assert text.count("word") == 400  # the wrapped paragraph loses no word


def test_a_long_table_continues_under_its_header(pdf_bytes):
    pages = [p.extract_text() for p in _reader(pdf_bytes).pages]
    with_rows = [t for t in pages if "item" in t]
    assert len(with_rows) >= 2
    for t in with_rows:
        assert "row" in t.replace("item", "") and "value" in t  # the header again on each page
    order = [int(m) for t in pages for m in re.findall(r"item(\d{3})", t)]
    assert order == list(range(150))


def test_a_wide_table_is_split_into_column_groups(pdf_bytes):
    text = _text(pdf_bytes)
    assert text.count("model1") >= 2  # the row names repeat in every part
    assert "(continued, part 2 of" in text


def test_an_image_for_each_figure_at_its_own_size(pdf_bytes):
    r = _reader(pdf_bytes)
    seen = {}
    for p in r.pages:  # matplotlib shares one resource dictionary: count distinct images
        for im in p.images:
            seen[im.name] = im.image.size
    figs = [f for s in _sections() for f in s.get("figures", [])]
    assert sorted(seen.values()) == sorted((f["width"], f["height"]) for f in figs)


def test_matplotlib_global_state_untouched():
    before = dict(matplotlib.rcParams)
    import matplotlib.pyplot as plt

    n_open = len(plt.get_fignums())
    render_pdf("t", [{"id": "a", "title": "a", "paragraphs": ["x"]}])
    assert dict(matplotlib.rcParams) == before
    assert len(plt.get_fignums()) == n_open


def test_empty_sections_and_empty_table():
    data = render_pdf("Only a title", [])
    assert len(_reader(data).pages) == 1 and "Only a title" in _text(data)
    data = render_pdf("t", [{"id": "e", "title": "Empty", "tables": [{"header": ["a", "b"], "rows": []}]}])
    assert "Empty" in _text(data)


# ------------------------------------------------------------------ the command line
@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("pdfcli")
    z, y = make_logits(n=600, k=3, temperature=2.0, seed=0)
    np.savez(d / "val.npz", logits=z, labels=y)
    z2, y2 = make_logits(n=800, k=3, temperature=2.0, seed=1)
    np.savez(d / "test.npz", logits=z2, labels=y2)
    return d


def _report(d, out, *extra):
    return subprocess.run([sys.executable, "-m", "calibrate.cli", "report", str(d / "test.npz"), "--fit-on",
                           str(d / "val.npz"), "--methods", "temperature", "--resamples", "30", "-o", str(out),
                           *map(str, extra)], capture_output=True, text=True)


def test_cli_writes_html_json_and_pdf_together(data_dir, tmp_path):
    r = _report(data_dir, tmp_path / "r.html", "--json", tmp_path / "r.json", "--pdf", tmp_path / "r.pdf")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "r.json", "r.pdf"]  # nothing else left
    pdf = (tmp_path / "r.pdf").read_bytes()
    html = (tmp_path / "r.html").read_text()
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["pdf"] == "r.pdf" and data["html"] == "r.html"
    text = _text(pdf)
    titles = re.findall(r"<h2>([^<]+)</h2>", html)
    assert len(titles) >= 5
    for t in titles:  # the same sections, the collapsed ones included
        assert t.replace("&#39;", "'") in text, t
    assert f"{data['metrics']['temperature']['ece']['estimate']:.4f}" in text
    n_imgs = len(re.findall(r'src="data:image/png;base64,', html))
    names = {im.name for p in _reader(pdf).pages for im in p.images}
    assert len(names) == n_imgs
    pngs = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert all(base64.b64decode(b)[:4] == b"\x89PNG" for b in pngs)


def test_cli_pdf_over_an_input_is_refused_and_nothing_written(data_dir, tmp_path):
    before = (data_dir / "test.npz").read_bytes()
    r = _report(data_dir, tmp_path / "r.html", "--json", tmp_path / "r.json", "--pdf", data_dir / "test.npz")
    assert r.returncode != 0 and "is also an input" in r.stderr
    assert (data_dir / "test.npz").read_bytes() == before
    assert list(tmp_path.iterdir()) == []


def test_cli_pdf_that_cannot_be_written_leaves_no_file(data_dir, tmp_path):
    r = _report(data_dir, tmp_path / "r.html", "--json", tmp_path / "r.json", "--pdf", tmp_path / "no" / "r.pdf")
    assert r.returncode != 0 and "does not exist" in r.stderr
    assert list(tmp_path.iterdir()) == []
    r = _report(data_dir, tmp_path / "r.html", "--pdf", tmp_path / "r.html")
    assert r.returncode != 0 and "named twice" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_write_report_keeps_the_old_set_when_the_pdf_fails(tmp_path, monkeypatch):
    """A failure while the unit is written (here: the PDF's temporary) leaves the old files."""
    from calibrate.io import outputs
    from calibrate.report.html import write_report

    (tmp_path / "r.html").write_text("old html")
    (tmp_path / "r.pdf").write_bytes(b"old pdf")
    real = outputs._write_temp

    def failing(target, content, tag):
        if target.name == "r.pdf":
            raise OSError(28, "No space left on device")
        return real(target, content, tag)

    monkeypatch.setattr(outputs, "_write_temp", failing)
    with pytest.raises(Exception, match="r.pdf"):
        write_report(tmp_path / "r.html", "new html", {"a": 1}, json_path=tmp_path / "r.json",
                     pdf_path=tmp_path / "r.pdf", pdf=b"%PDF new")
    assert (tmp_path / "r.html").read_text() == "old html" and (tmp_path / "r.pdf").read_bytes() == b"old pdf"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "r.pdf"]
