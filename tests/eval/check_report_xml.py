#!/usr/bin/python3
"""Parses the SVG and HTML files that eval writes: both must be well-formed
XML (the HTML is polyglot), the HTML must also balance its tags as HTML, and
each must hold what a reader needs (panels, curves, tables).

usage: check_report_xml.py DIR"""
import html.parser
import os
import sys
import xml.etree.ElementTree as ET

SVG = "{http://www.w3.org/2000/svg}"
XHTML = "{http://www.w3.org/1999/xhtml}"
VOID = {"meta", "br", "hr", "img", "input", "link", "area", "base", "col", "embed", "source",
        "track", "wbr"}
# SVG elements that the polyglot HTML closes with "/>"
SELF_CLOSING_OK = {"rect", "line", "path", "circle", "polyline"}


class Balance(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.errors = [], []

    def handle_starttag(self, tag, attrs):
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        if tag not in VOID and tag not in SELF_CLOSING_OK:
            self.errors.append(f"<{tag}/> is not a void element")

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()


def main():
    d = sys.argv[1]
    fails = []
    svg = ET.parse(os.path.join(d, "zero-shot-roc.svg")).getroot()
    if svg.tag != SVG + "svg":
        fails.append(f"SVG root is {svg.tag}")
    panels = svg.findall(SVG + "g")
    curves = svg.findall(f".//{SVG}polyline")
    if len(panels) != 2 or len(curves) != 3:
        fails.append(f"SVG: {len(panels)} panels and {len(curves)} curves, expected 2 and 3")
    for c in curves:
        pts = [tuple(map(float, p.split(","))) for p in c.get("points").split()]
        if len(pts) < 2:
            fails.append("a curve has fewer than 2 points")

    path = os.path.join(d, "zero-shot.html")
    root = ET.parse(path).getroot()
    if root.tag != XHTML + "html":
        fails.append(f"HTML root is {root.tag}")
    if len(root.findall(f".//{XHTML}table")) != 3:
        fails.append("HTML does not hold its three tables (averages, history, tasks)")
    if len(root.findall(f".//{SVG}svg")) != 1:
        fails.append("HTML does not hold the ROC figure inline")
    text = open(path, encoding="utf-8").read()
    if not text.startswith("<!DOCTYPE html>"):
        fails.append("HTML lacks the doctype")
    b = Balance()
    b.feed(text)
    b.close()
    fails += b.errors
    if b.stack:
        fails.append(f"unclosed HTML elements: {b.stack}")
    for f in fails:
        print("FAILED:", f, file=sys.stderr)
    if not fails:
        print("report files parse as XML and HTML")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
