"""The report as a PDF: the same sections as the HTML page (:func:`calibrate.report.html.render_html`),
laid out on A4 portrait pages with matplotlib alone (``backend_pdf.PdfPages``, no pyplot).

Text is wrapped to the page; a table too wide for the page is split into column groups
(the first column repeated), a long one continues on the next page under its header
again; each cell shows its text with its interval (``ci``) below; figures (the sections'
base64 PNGs) are scaled to the page width. Collapsed sections are printed in full. Fonts
are embedded as TrueType (``pdf.fonttype`` 42, inside a local ``rc_context``), so the text
can be searched and copied. The output is deterministic: no creation date is written, so
two renders of the same sections are byte-identical.
"""

from __future__ import annotations

import base64
import io
import textwrap

import matplotlib
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from calibrate.report.html import column_groups, prepare_sections, split_columns

PAGE_W, PAGE_H = 8.27, 11.69  # A4 portrait, inches
MARGIN = 0.65
CONTENT_W = PAGE_W - 2 * MARGIN
BOTTOM = MARGIN + 0.25  # the footer lies under it
CHAR_EM = 0.6  # average advance of DejaVu Sans (digits 0.64, lower case about 0.55), in em
LINE = 1.32  # line height, in font sizes
TABLE_PT, CI_PT = 7.0, 6.0
CELL_PAD = 0.06  # inches each side
RC = {"pdf.fonttype": 42, "font.family": "DejaVu Sans"}  # TrueType fonts: the text can be extracted
COLORS = {"better": "#1a7f37", "worse": "#b42318"}


def _chars(width_in: float, size_pt: float, em: float = CHAR_EM) -> int:
    """How many characters of ``size_pt`` fit in ``width_in`` inches."""
    return max(1, int(width_in * 72 / (em * size_pt)))


def _wrap(text: str, width_in: float, size_pt: float, em: float = CHAR_EM) -> list[str]:
    lines = []
    for para in str(text).splitlines() or [""]:
        lines += textwrap.wrap(para, _chars(width_in, size_pt, em), break_on_hyphens=False) or [""]
    return lines


class _Layout:
    """A cursor over A4 pages (figures kept in memory until the whole document is laid out)."""

    def __init__(self):
        self.pages: list[Figure] = []
        self.new_page()

    def new_page(self):
        self.fig = Figure(figsize=(PAGE_W, PAGE_H))
        self.pages.append(self.fig)
        self.y = PAGE_H - MARGIN

    def room(self) -> float:
        return self.y - BOTTOM

    def need(self, height: float):
        """A new page unless ``height`` inches fit below the cursor (a full page always does)."""
        if height > self.room() and self.y < PAGE_H - MARGIN - 1e-9:
            self.new_page()

    def text(self, x: float, y: float, s: str, size: float, **kw):
        """Text with its top-left corner at (x, y) inches from the page's bottom-left."""
        self.fig.text(x / PAGE_W, y / PAGE_H, s, fontsize=size, va="top", ha=kw.pop("ha", "left"),
                      parse_math=False, **kw)

    def block(self, s: str, size: float, x: float = MARGIN, width: float = CONTENT_W, gap: float = 0.08,
              em: float = CHAR_EM, **kw):
        """Wrapped text at the cursor, continued on the next page where it does not fit."""
        step = LINE * size / 72
        lines = _wrap(s, width, size, em)
        while lines:
            self.need(step)
            fit = max(1, int((self.room() + 1e-9) // step))
            self.text(x, self.y, "\n".join(lines[:fit]), size, linespacing=LINE, **kw)
            self.y -= step * len(lines[:fit])
            lines = lines[fit:]
        self.y -= gap

    def rule(self, y: float, x0: float = MARGIN, x1: float = MARGIN + CONTENT_W, color="#cccccc", lw=0.5):
        self.fig.add_artist(Line2D([x0 / PAGE_W, x1 / PAGE_W], [y / PAGE_H, y / PAGE_H], color=color,
                                   linewidth=lw))

    def rect(self, x: float, y: float, w: float, h: float, color: str):
        """A filled rectangle, (x, y) its bottom-left corner, behind the text."""
        self.fig.add_artist(Rectangle((x / PAGE_W, y / PAGE_H), w / PAGE_W, h / PAGE_H, facecolor=color,
                                      edgecolor="none", zorder=-1))


# ------------------------------------------------------------------ tables
def _wrap_words(text: str, width: float) -> list[str]:
    """A header in bold table type, wrapped at spaces to ``width`` inches (measured)."""
    lines: list[str] = []
    for word in str(text).split():
        if lines and _measure(f"{lines[-1]} {word}", TABLE_PT, bold=True) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


def _cell_lines(cell: dict, width: float) -> tuple[list[str], list[str]]:
    """A cell's text lines and interval lines: a long text (over 40 characters) wraps to the
    column, a short one never does (its column is as wide as it)."""
    t = str(cell.get("text", ""))
    text = _wrap(t, width, TABLE_PT) if len(t) > 40 else t.splitlines() or [""]
    return text, [str(cell["ci"])] if cell.get("ci") else []


def _measure(s: str, size: float, bold: bool = False) -> float:
    """Width in inches of ``s`` set in DejaVu Sans at ``size`` points."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    prop = FontProperties(family="DejaVu Sans", size=size, weight="bold" if bold else "normal")
    return max((TextToPath().get_text_width_height_descent(line, prop, ismath=False)[0] for line in s.splitlines()),
               default=0.0) / 72


def _pdf_column_widths(table: dict) -> list[float]:
    """Width in inches of each column: its longest header word (bold), its longest short cell
    and interval; a cell over 40 characters wraps, and counts as 24 characters."""
    ncol = max([len(table["header"])] + [len(r["cells"]) for r in table["rows"]])
    w = [0.0] * ncol
    for j, h in enumerate(table["header"]):
        w[j] = max((_measure(word, TABLE_PT, bold=True) for word in str(h).split()), default=0.0)
    for r in table["rows"]:
        for j, c in enumerate(r["cells"]):
            t = str(c.get("text", ""))
            tw = 24 * CHAR_EM * TABLE_PT / 72 if len(t) > 40 else _measure(t, TABLE_PT)
            w[j] = max(w[j], tw, _measure(str(c.get("ci") or ""), CI_PT))
    return [x * 1.04 + 2 * CELL_PAD for x in w]


def _table_parts(table: dict) -> list[tuple[dict, list[float]]]:
    widths = _pdf_column_widths(table)
    if sum(widths) <= CONTENT_W or len(widths) <= 2:
        if sum(widths) > CONTENT_W:  # two columns: the wider one wraps to what is left
            wide = max(range(len(widths)), key=widths.__getitem__)
            widths[wide] = max(0.5, CONTENT_W - (sum(widths) - widths[wide]))
        return [(table, widths)]
    parts = split_columns(table, column_groups(widths, CONTENT_W, 1), 1)
    return [(p, [widths[0]] + [widths[j] for j in g]) for p, g in zip(parts, column_groups(widths, CONTENT_W, 1))]


def _draw_header(lay: _Layout, head: list[list[str]], xs: list[float], head_h: float):
    lay.rect(MARGIN, lay.y - head_h, xs[-1] - MARGIN, head_h, "#f0f0f0")
    for j, lines in enumerate(head):
        x, ha = (xs[j] + CELL_PAD, "left") if j == 0 else (xs[j + 1] - CELL_PAD, "right")
        lay.text(x, lay.y - CELL_PAD, "\n".join(lines), TABLE_PT, ha=ha, weight="bold", linespacing=LINE)
    lay.y -= head_h
    lay.rule(lay.y, xs[0], xs[-1], color="#888888", lw=0.7)


def _draw_part(lay: _Layout, part: dict, widths: list[float]):
    """One table that fits the page width; rows continue on the next page under the header again."""
    if part.get("caption"):
        lay.block(part["caption"], 8, weight="bold", gap=0.04)
    xs = [MARGIN]
    for w in widths:
        xs.append(xs[-1] + w)
    head = [_wrap_words(h, w - 2 * CELL_PAD) for h, w in zip(part["header"], widths)]
    head_h = max([len(h) for h in head] + [1]) * LINE * TABLE_PT / 72 + 2 * CELL_PAD
    rows = []
    for r in part["rows"]:
        cells = [_cell_lines(c, w - 2 * CELL_PAD) for c, w in zip(r["cells"], widths)]
        h = max([len(t) * LINE * TABLE_PT / 72 + len(ci) * LINE * CI_PT / 72 for t, ci in cells] + [0])
        rows.append((r, cells, h + 2 * CELL_PAD))
    lay.need(head_h + (rows[0][2] if rows else 0))
    _draw_header(lay, head, xs, head_h)
    for r, cells, h in rows:
        if h > lay.room():
            lay.new_page()
            _draw_header(lay, head, xs, head_h)
        if r.get("cls") == "best":
            lay.rect(MARGIN, lay.y - h, xs[-1] - MARGIN, h, "#eef6ee")
        for j, ((text, ci), cell) in enumerate(zip(cells, r["cells"])):
            left = j == 0 or len(str(cell.get("text", ""))) > 40
            x, ha = (xs[j] + CELL_PAD, "left") if left else (xs[j + 1] - CELL_PAD, "right")
            classes = (cell.get("cls") or "").split()
            color = COLORS.get(classes[0] if classes else "", "#222222")
            if "tie" in classes:  # as the HTML's td.tie::after
                text = [*text[:-1], f"{text[-1]} (tie)"] if text else ["(tie)"]
            y = lay.y - CELL_PAD
            lay.text(x, y, "\n".join(text), TABLE_PT, ha=ha, color=color, linespacing=LINE)
            if ci:
                lay.text(x, y - len(text) * LINE * TABLE_PT / 72, "\n".join(ci), CI_PT, ha=ha, color="#777777",
                         linespacing=LINE)
        lay.y -= h
        lay.rule(lay.y, xs[0], xs[-1])
    lay.y -= 0.15


def _draw_table(lay: _Layout, table: dict):
    for part, widths in _table_parts(table):
        _draw_part(lay, part, widths)


# ------------------------------------------------------------------ figures
def _draw_figure(lay: _Layout, fig: dict):
    from matplotlib.image import imread

    img = imread(io.BytesIO(base64.b64decode(fig["png"])), format="png")
    h_px, w_px = img.shape[:2]
    cap = _wrap(fig.get("caption", ""), CONTENT_W, 8) if fig.get("caption") else []
    cap_h = len(cap) * LINE * 8 / 72
    w = CONTENT_W
    h = w * h_px / w_px
    full = PAGE_H - MARGIN - BOTTOM - cap_h - 0.1
    if h > full:  # taller than a page: scaled to the page height
        h, w = full, full * w_px / h_px
    lay.need(h + cap_h + 0.1)
    ax = lay.fig.add_axes(((MARGIN + (CONTENT_W - w) / 2) / PAGE_W, (lay.y - h) / PAGE_H, w / PAGE_W, h / PAGE_H))
    ax.imshow(img, interpolation="none", aspect="auto")
    ax.set_axis_off()
    lay.y -= h + 0.05
    if cap:
        lay.block("\n".join(cap), 8, color="#555555")
    lay.y -= 0.1


# ------------------------------------------------------------------ the document
def _draw_section(lay: _Layout, s: dict):
    lay.need(0.9)  # a title is never the last line of a page
    if s["lead"]:
        lay.y -= 0.05
    start_page, start_y = len(lay.pages), lay.y
    lay.block(s["title"], 13, weight="bold", gap=0.02)
    lay.rule(lay.y + 0.02)
    lay.y -= 0.1
    for p in s["paragraphs"]:
        lay.block(p, 9, color="#333333")
    if s["summary"]:
        key_w = min(2.0, max(0.6, max(len(str(k)) for k, _ in s["summary"]) * 0.66 * 9 / 72 + 0.1))
        for k, v in s["summary"]:
            lines = _wrap(v, CONTENT_W - key_w, 9)
            lay.need(LINE * 9 / 72)
            lay.text(MARGIN, lay.y, str(k), 9, weight="bold")
            lay.block("\n".join(lines), 9, x=MARGIN + key_w, width=CONTENT_W - key_w, gap=0.02)
        lay.y -= 0.08
    for t in s["tables"]:
        if t.get("html_only"):  # a searchable table of the web page (every class): the JSON holds it
            lay.block(f"{t.get('caption', 'A table')} -- in the HTML report and the JSON only.", 8, color="#555555")
            continue
        _draw_table(lay, t)
    for f in s["figures"]:
        _draw_figure(lay, f)
    if s["pre"]:
        lay.block(s["pre"], 7, family="monospace", em=0.62)
    if s["lead"] and len(lay.pages) == start_page:  # the summary box, when it fits on one page
        lay.rect(MARGIN - 0.12, lay.y, CONTENT_W + 0.24, start_y - lay.y + 0.08, "#f4f8fc")
        lay.rect(MARGIN - 0.12, lay.y, 0.04, start_y - lay.y + 0.08, "#4C72B0")
    lay.y -= 0.15


def render_pdf(title: str, sections: list, subtitle: str = "") -> bytes:
    """The report of ``sections`` (the dicts :func:`calibrate.report.html.render_html` takes)
    as PDF bytes: A4 portrait pages, title and subtitle first, a page footer "title — i / N".
    Same input, same bytes (no creation date is written)."""
    from matplotlib.backends.backend_pdf import PdfPages

    with matplotlib.rc_context(RC):
        pages = layout_pages(title, sections, subtitle)
        buf = io.BytesIO()
        with PdfPages(buf, metadata={"CreationDate": None, "Title": title, "Creator": "calibrate"}) as pdf:
            for page in pages:
                pdf.savefig(page)
    return buf.getvalue()


def layout_pages(title: str, sections: list, subtitle: str = "") -> list[Figure]:
    """The pages of :func:`render_pdf` as matplotlib figures (to save as PDF, or as PNG to look at;
    draw them inside ``matplotlib.rc_context(RC)`` to get the same fonts)."""
    lay = _Layout()
    lay.block(title, 18, weight="bold", gap=0.04)
    if subtitle:
        lay.block(subtitle, 10, color="#555555")
    lay.y -= 0.1
    for s in prepare_sections(sections, fit=False):
        _draw_section(lay, s)
    n = len(lay.pages)
    for i, page in enumerate(lay.pages, 1):
        page.text(0.5, (MARGIN - 0.05) / PAGE_H, f"{title} — {i} / {n}", fontsize=7, color="#777777",
                  ha="center", va="top", parse_math=False)
    return lay.pages
