"""The HTML report (--format html) and the data behind its plots (models[].measurements in the
JSON): the page's structure checked exactly against the JSON of the same run, then the page
opened in headless Chromium. The notebook view of gradlint.check is in tests/test_notebook.py."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import struct
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from gradlint.discover import Target
from gradlint.emit import FORMATS
from gradlint.engine import Settings, lint_target
from gradlint.overrides import Overrides
from gradlint.registry import all_rules
from tests._gl201 import BROKEN, HEALTHY, run

ROOT = Path(__file__).resolve().parent.parent
# Between them every kind of plot: per-layer gradients everywhere, dead ReLUs and SGD's curvature
# and a diverging lookahead (sgd_lr_too_high), a residual stream (resnet_no_norm), saturated tanh
# (deep_tanh_mlp_large_gain).
SAMPLES = ("samples/sgd_lr_too_high.py", "samples/resnet_no_norm.py", "samples/deep_tanh_mlp_large_gain.py")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Element:
    def __init__(self, tag: str, attrs: dict, parent: Element | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Element] = []
        self.content: list[str | Element] = []  # text and children, in document order

    @property
    def text(self) -> str:
        return "".join(part if isinstance(part, str) else part.text for part in self.content)

    def iter(self):
        yield self
        for child in self.children:
            yield from child.iter()

    def find_all(self, tag: str | None = None, **attrs: str) -> list[Element]:
        """Descendants with the tag and attributes (class_ matches one of the classes)."""
        def matches(e: Element) -> bool:
            for key, value in attrs.items():
                if key == "class_":
                    if value not in e.attrs.get("class", "").split():
                        return False
                elif e.attrs.get(key.replace("_", "-")) != value:
                    return False
            return tag is None or e.tag == tag
        return [e for e in self.iter() if e is not self and matches(e)]


class StrictTree(HTMLParser):
    """The standard library's parser, building a tree and failing on an end tag that does not close
    the element open at that point, on an element left open, and on a repeated id."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = self.current = Element("#document", {}, None)
        self.ids: set[str] = set()
        self.feed(page)
        self.close()
        assert self.current is self.root, f"<{self.current.tag}> is never closed"

    def handle_starttag(self, tag, attrs):
        element = Element(tag, dict(attrs), self.current)
        self.current.children.append(element)
        self.current.content.append(element)
        if "id" in element.attrs:
            assert element.attrs["id"] not in self.ids, f"id {element.attrs['id']} is used twice"
            self.ids.add(element.attrs["id"])
        if tag not in VOID:
            self.current = element

    def handle_startendtag(self, tag, attrs):  # <rect .../> in SVG
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.current = self.current.parent

    def handle_endtag(self, tag):
        assert tag == self.current.tag, f"</{tag}> closes <{self.current.tag}>"
        self.current = self.current.parent

    def handle_data(self, data):
        self.current.content.append(data)


@pytest.fixture(scope="module")
def linted():
    """The samples linted once, in this process, as the CLI lints them, and the HTML page and the
    JSON document of those same reports."""
    cwd = os.getcwd()
    os.chdir(ROOT)  # the samples' paths, and the source lines the findings quote, are relative to it
    try:
        reports = [lint_target(Target(path), Settings(rules=tuple(all_rules())), Overrides()) for path in SAMPLES]
        page = FORMATS["html"](reports)
        document = json.loads(FORMATS["json"](reports))
    finally:
        os.chdir(cwd)
    return reports, page, document


@pytest.fixture(scope="module")
def tree(linted):
    return StrictTree(linted[1]).root


def test_every_model_has_its_section_and_a_row_in_the_index(linted, tree):
    _, _, document = linted
    sections = tree.find_all("section", class_="model")
    assert [s.attrs["id"] for s in sections] == ["model-1", "model-2", "model-3"]
    assert [s.find_all("h2")[0].text for s in sections] == [m["target"] for m in document["models"]]
    rows = [[cell.text for cell in row.find_all("td")] for row in tree.find_all("table", class_="index")[0]
            .find_all("tr") if row.find_all("td")]
    assert rows == [[path, m["target"], f"{m['risk']:.2f}", m["level"], str(len(m["findings"]))]
                    for path, m in zip(SAMPLES, document["models"])]
    links = [a.attrs["href"] for a in tree.find_all("table", class_="index")[0].find_all("a")]
    assert links == ["#model-1", "#model-2", "#model-3"]


def test_every_finding_has_its_anchor_source_and_fix(linted, tree):
    _, _, document = linted
    for number, model in enumerate(document["models"], start=1):
        articles = tree.find_all("section", id=f"model-{number}")[0].find_all("article")
        assert [a.attrs["id"] for a in articles] == [f"model-{number}-finding-{k}"
                                                     for k in range(1, len(model["findings"]) + 1)]
        for article, finding in zip(articles, model["findings"]):
            assert article.find_all("h3")[0].text == f"{finding['code']} {finding['severity']} {finding['name']}"
            assert article.find_all("p", class_="message")[0].text == finding["message"]
            excerpt = article.find_all("pre")[0].text
            source = (ROOT / finding["path"]).read_text().splitlines()[finding["line"] - 1]
            assert f"  --> {finding['path']}:{finding['line']}:{finding['col']}\n" in excerpt
            assert f"\n{finding['line']} | {source}\n" in excerpt
            assert f"  help: {finding['fix']['message']}" in excerpt


def test_the_verdict_links_causes_to_their_findings_and_gives_the_suggested_lr(linted, tree):
    reports = linted[0]
    verdict = tree.find_all("section", id="model-1")[0].find_all("div", class_="verdict")[0]
    assert verdict.find_all("span", class_="risk")[0].text == "risk 0.99 (high)"
    terms = [dt.text for dt in verdict.find_all("dt")]
    assert terms == ["Top causes", "Suggested lr", "Cost"]
    causes = {a.text: a.attrs["href"] for a in verdict.find_all("dd")[0].find_all("a")}
    assert causes == {"GL602 lr-exceeds-curvature-bound": "#model-1-finding-2",
                      "GL601 first-update-too-large": "#model-1-finding-1",
                      "GL604 lookahead-diverges": "#model-1-finding-3"}
    assert "suggested lr: " + verdict.find_all("dd")[1].text == reports[0].suggestion.line()
    assert verdict.find_all("dd")[1].text.endswith("(configured 5, 512x too high; bound: lookahead)")


def _series(measurements: dict, path: str) -> list:
    """The JSON list a data-series names: `layers.grad_norm`, `lookahead[1].losses`, ..."""
    value = measurements
    for part in re.findall(r"[a-z_]+|\[\d+\]", path):
        value = value[int(part[1:-1])] if part.startswith("[") else value[part]
    return value if isinstance(value, list) else [value]


def _expected_series(measurements: dict) -> set[str]:
    """Every series the report must draw for these measurements."""
    expected = set()
    if "layers" in measurements:
        expected |= {"layers.grad_norm", "layers.activation_rms"}
    for key in ("saturated_fraction", "dead_fraction"):
        if any(v is not None for v in measurements.get("activations", {}).get(key, [])):
            expected.add(f"activations.{key}")
    expected |= {f"residual_streams[{i}].mean_square" for i in range(len(measurements.get("residual_streams", [])))}
    for i in range(len(measurements.get("lookahead", []))):
        expected |= {f"lookahead[{i}].losses", f"lookahead[{i}].grad_norms"}
    if "curvature" in measurements:
        expected |= {"curvature.top_eigenvalue", "curvature.max_stable_eigenvalue"}
    return expected


def test_every_plot_has_its_data_points(linted, tree):
    _, _, document = linted
    kinds = []
    for number, model in enumerate(document["models"], start=1):
        section = tree.find_all("section", id=f"model-{number}")[0]
        measurements = model["measurements"]
        points: dict[str, list[Element]] = {}
        for point in section.find_all(class_="point"):
            points.setdefault(point.attrs["data-series"], []).append(point)
        assert set(points) == _expected_series(measurements)
        for name, drawn in points.items():
            values = _series(measurements, name)
            # A fraction that does not apply to an activation is not drawn; any other null is a
            # value that was not finite, drawn as a cross.
            plotted = [v for v in values if v is not None] if name.startswith("activations.") else values
            assert len(drawn) == len(plotted), name
            for point, value in zip(drawn, plotted):
                if value is None:
                    assert point.attrs["data-value"] == "nonfinite"
                else:
                    assert float(point.attrs["data-value"]) == value, name
        kinds.append([f.attrs["data-kind"] for f in section.find_all("figure")])
    assert kinds == [["layers", "activations", "lookahead", "curvature"],
                     ["layers", "residual", "activations", "lookahead"],
                     ["layers", "activations", "lookahead"]]


def test_findings_are_marked_on_the_layers_they_name(linted, tree):
    _, _, document = linted
    for number, model in enumerate(document["models"], start=1):
        figure = tree.find_all("figure", id=f"model-{number}-layers")[0]
        names = model["measurements"]["layers"]["names"]
        marks = {(a.attrs["href"], int(a.attrs["data-index"])) for a in figure.find_all("a")}
        expected = set()
        for k, finding in enumerate(model["findings"], start=1):
            named = [i for i, name in enumerate(names)
                     if finding["module"] and (name == finding["module"] or name.startswith(finding["module"] + "."))]
            if named:
                expected.add((f"#model-{number}-finding-{k}", named[0]))
        assert marks == expected
    # resnet_no_norm: the layer GL502 blames, and the output layer GL205 names, carry their marks.
    marks = {a.find_all("text")[0].content[0] for a in tree.find_all("figure", id="model-2-layers")[0].find_all("a")}
    assert {"GL502", "GL205"} <= marks


def test_every_link_leads_to_an_anchor_and_nothing_is_loaded_from_outside(linted, tree):
    page = linted[1]
    ids = {e.attrs["id"] for e in tree.iter() if "id" in e.attrs}
    hrefs = [e.attrs["href"] for e in tree.iter() if "href" in e.attrs]
    assert hrefs and all(h.startswith("#") and h[1:] in ids for h in hrefs)
    loading = [e.tag for e in tree.iter() if e.tag in {"script", "link", "img", "iframe", "object", "embed", "image",
                                                         "use", "video", "audio", "source"}]
    assert loading == []
    assert not [e.tag for e in tree.iter() if {"src", "srcset", "data", "poster", "action", "xlink:href"} & set(e.attrs)]
    style = "".join(e.text for e in tree.find_all("style"))
    assert "url(" not in style and "@import" not in style
    assert "http://" not in page and "https://" not in page


def test_the_json_holds_only_measurements_the_run_took(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken.py").write_text(BROKEN)
    # GL201 reads the recorded forward pass only: activations, no backward signal, no lookahead.
    _, out, _ = run("--isolated", "--format", "json", "broken.py", select="GL201")
    measurements = json.loads(out)["models"][0]["measurements"]
    assert list(measurements) == ["activations"]
    assert measurements["activations"] == {"names": ["relu"], "kinds": ["relu"], "saturated_fraction": [None],
                                           "dead_fraction": [measurements["activations"]["dead_fraction"][0]]}
    # Nothing ran under --no-probe: no measurements at all.
    _, out, _ = run("--isolated", "--format", "json", "--no-probe", "broken.py", select="GL201")
    assert "measurements" not in json.loads(out)["models"][0]


def test_format_html_writes_one_page_with_an_index(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken.py").write_text(BROKEN)
    (tmp_path / "healthy.py").write_text(HEALTHY)
    (tmp_path / "bad.py").write_text("import torch\ndef build_model(:\n")
    (tmp_path / "helpers.py").write_text("import torch\n\ndef scale(x):\n    return 2 * x\n")
    code, out, err = run("--isolated", "--format", "html", "-o", "report.html", "broken.py", "healthy.py", "bad.py",
                         "helpers.py")
    assert (code, out, err) == (2, "", "")
    root = StrictTree((tmp_path / "report.html").read_text()).root
    rows = [[cell.text for cell in row.find_all("td")] for row in root.find_all("tr") if row.find_all("td")]
    assert [row[:2] + row[3:] for row in rows] == [["broken.py", "broken.py::build_model", "low", "1"],
                                                  ["healthy.py", "healthy.py::build_model", "low", "0"],
                                                  ["bad.py", "bad.py", "", "0"]]
    assert rows[2][2] == "error"
    assert root.find_all("p", class_="error")[0].text == "error: syntax error at line 2: invalid syntax"
    assert root.find_all("p", class_="summary")[0].text == \
        "Found 1 finding in 2 models (1 error); 1 target failed to load; 1 file without a model skipped."
    skipped = root.find_all("ul", class_="skipped")[0].find_all("li")
    assert [li.find_all("code")[0].text for li in skipped] == ["helpers.py"]


# -- in a real browser ------------------------------------------------------------------------
def _browser():
    spec = importlib.util.spec_from_file_location("gradlint_docs_browser", ROOT / "docs" / "browser.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_the_page_renders_in_chromium(linted, tree, tmp_path):
    browser = _browser()
    executable = browser.find()
    if executable is None:
        pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)")
    path = tmp_path / "report.html"
    path.write_text(linted[1], encoding="utf-8")
    with browser.Page(executable) as page:
        page.open(path)
        sizes = page.evaluate("[...document.querySelectorAll('svg.chart')]"
                              ".map(e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; })")
        width, height = page.screenshot(tmp_path / "report.png")
        assert page.errors() == []
        assert page.requests() == [path.resolve().as_uri()]
    assert len(sizes) == len(tree.find_all("svg")) > 0
    assert all(w > 0 and h > 0 for w, h in sizes)
    png = (tmp_path / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (width, height) and height > 1000
