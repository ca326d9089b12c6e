"""A tiny document model (headings, paragraphs, lists, tables, images) written as Markdown, as HTML and as
plain text for the terminal."""

from __future__ import annotations

import html
from dataclasses import dataclass


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Image:
    path: str  # relative to the report directory
    caption: str


Block = Heading | Paragraph | Bullets | Table | Image


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: list[Block]) -> str:
    out: list[str] = []
    for block in blocks:
        match block:
            case Heading(text, level):
                out.append(f"{'#' * level} {text}")
            case Paragraph(text):
                out.append(text)
            case Bullets(items):
                out.append("\n".join(f"- {item}" for item in items))
            case Table(header, rows):
                lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
                lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
                out.append("\n".join(lines))
            case Image(path, caption):
                out.append(f"![{caption}]({path})\n\n*{caption}*")
    return "\n\n".join(out) + "\n"


def to_text(blocks: list[Block]) -> str:
    """Plain text for a terminal: tables as left-aligned columns, images as their caption and path."""
    out: list[str] = []
    for block in blocks:
        match block:
            case Heading(text=text) | Paragraph(text=text):
                out.append(text)
            case Bullets(items):
                out.append("\n".join(f"- {item}" for item in items))
            case Table(header, rows):
                lines = [header, *rows]
                widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
                out.append("\n".join(_text_row(line, widths) for line in lines))
            case Image(path, caption):
                out.append(f"{caption}: {path}")
    return "\n\n".join(out) + "\n"


def _text_row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()


STYLE = ("body{font-family:sans-serif;max-width:1400px;margin:2em auto;padding:0 1em;line-height:1.4}"
         "table{border-collapse:collapse;font-size:0.9em;margin:1em 0}"
         "th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}"
         "td:first-child,th:first-child{text-align:left}img{max-width:100%}figcaption{color:#555}")


def to_html(blocks: list[Block], title: str) -> str:
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{STYLE}</style></head><body>"]
    for block in blocks:
        match block:
            case Heading(text, level):
                out.append(f"<h{level}>{html.escape(text)}</h{level}>")
            case Paragraph(text):
                out.append(f"<p>{html.escape(text)}</p>")
            case Bullets(items):
                out.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>")
            case Table(header, rows):
                head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
                body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
                out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            case Image(path, caption):
                out.append(f"<figure><img src='{html.escape(path)}' alt='{html.escape(caption)}'>"
                           f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
