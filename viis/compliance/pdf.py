"""PDF documents for people: a filing (Q16, N14.1) and the bureau's report with bar charts.

Chinese text uses reportlab's built-in CID font ``STSong-Light`` (``UnicodeCIDFont``): the
reader's PDF viewer supplies the glyphs, so nothing is downloaded or embedded. Layout is plain
flowables (platypus): a title, key-value tables, the camera list, and the signature facts that
tie the paper to the signed JSON package (key id and SHA-256 of the signed document).
"""

from __future__ import annotations

import io
from typing import Any

from reportlab.graphics.charts.barcharts import HorizontalBarChart
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

FONT = "STSong-Light"
_registered = False


def _font() -> str:
    global _registered
    if not _registered:
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))
        _registered = True
    return FONT


def _styles() -> tuple[ParagraphStyle, ParagraphStyle, ParagraphStyle]:
    f = _font()
    return (ParagraphStyle("title", fontName=f, fontSize=16, leading=22, spaceAfter=6),
            ParagraphStyle("h", fontName=f, fontSize=11, leading=15, spaceBefore=8, spaceAfter=3),
            ParagraphStyle("body", fontName=f, fontSize=9, leading=12))


def _esc(v: Any) -> str:
    s = "" if v is None else str(v)
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _table(rows: list[list[Any]], widths: list[float] | None = None, header: bool = False) -> Table:
    _, _, body = _styles()
    t = Table([[Paragraph(_esc(c), body) for c in r] for r in rows], colWidths=widths, repeatRows=1 if header else 0)
    style = [("GRID", (0, 0), (-1, -1), 0.4, colors.grey), ("VALIGN", (0, 0), (-1, -1), "TOP")]
    if header:
        style.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8e8e8")))
    t.setStyle(TableStyle(style))
    return t


KIND_TITLES = {"acceptance": "验收备案 acceptance filing (Q16.1)", "removal": "拆除备案 removal filing (Q16.2)",
               "transitional": "既有系统备案 existing system (Q35.1)", "in_use": "投入使用备案 going into use (N14.1)",
               "existing": "既有系统备案 existing system (N14.1)", "change": "变更备案 change filing (N14.1)"}


def filing_pdf(package: dict[str, Any], *, state: str = "", filed_on: str | None = None,
               channel: str = "", sha256: str = "") -> bytes:
    """The filing for people, from the same signed document the intake receives."""
    doc, sig = package["document"], package["signature"]
    c = doc["contents"]
    title, h, body = _styles()
    u, loc, cams, st, sy = (c["unit_details"], c["system_location"], c["camera_count_and_types"],
                            c["storage_period"], c["system"])
    story = [Paragraph("公共安全视频图像信息系统备案表", title),
             Paragraph(_esc(KIND_TITLES.get(doc["kind"], doc["kind"])), h),
             _table([["备案机关 authority", doc["authority"]], ["依据 articles", ", ".join(doc["articles"])],
                     ["事由日期 event", doc["event_on"] or "-"], ["截止日期 due (Asia/Shanghai)", doc["due_on"]],
                     ["状态 state", state or "-"], ["报送日期 filed on", filed_on or "-"],
                     ["报送方式 channel", channel or "-"]], [55 * mm, 115 * mm]),
             Paragraph("单位 Unit", h),
             _table([["名称 name", u["name"]], ["代码 code", u["code"]], ["性质 use", u["use"]],
                     ["地址 address", u["address"]], ["联系人 contact", u["contact"]],
                     ["辖区 district", u["district"]]], [55 * mm, 115 * mm]),
             Paragraph("系统位置 System location", h),
             _table([["场所 site", f"{loc['name']} ({loc['site']})"], ["地址 address", loc["address"]],
                     ["坐标 coordinates", f"{loc['lat']}, {loc['lon']}" if loc["lat"] is not None else "-"],
                     ["类别 categories", ", ".join(loc["categories"])],
                     ["公共场所 public place", "是 yes" if loc["public_place"] else "否 no"]], [55 * mm, 115 * mm]),
             Paragraph("系统 System", h),
             _table([["名称 name", f"{sy['name']} ({sy['code']})"], ["用途 purpose (Q20.1)", sy["purpose"]],
                     ["检验报告 inspection report (Q15.1)", sy["inspection_report"] or "-"],
                     ["验收 accepted", sy["accepted_on"] or "-"], ["投入使用 in use", sy["in_use_on"] or "-"],
                     ["拆除 removed", sy["removed_on"] or "-"]]
                    + [[f"{x['role']} (Q14.1)", f"{x['name']} {x.get('qualification') or ''} "
                        f"{x.get('qualification_expires') or ''}"] for x in sy["contractors"]],
                    [55 * mm, 115 * mm]),
             Paragraph(f"存储期限 Storage period: 系统 {st['system_days']} 天 days; 摄像机 cameras "
                       f"{', '.join(str(d) for d in st['camera_days']) or '-'} 天 days", body),
             Paragraph(f"图像采集设备 Cameras: {cams['count']}", h),
             _table([["编号 id", "名称 name", "位置类型 location type", "坐标 coordinates", "音频 audio"]]
                    + [[x["id"], x["name"], x["location_type"],
                        f"{x['lat']}, {x['lon']}" if x["lat"] is not None else "-", "是" if x["audio"] else "否"]
                       for x in cams["cameras"]], [30 * mm, 40 * mm, 40 * mm, 40 * mm, 20 * mm], header=True),
             Spacer(1, 6 * mm),
             Paragraph(f"签名 Signature: {_esc(sig['algorithm'])} key {_esc(sig['key_id'])}; "
                       f"SHA-256 of the signed document {_esc(sha256)}. The signed JSON package is the "
                       "record the police intake verifies.", body)]
    buf = io.BytesIO()
    SimpleDocTemplate(buf, pagesize=A4, title="VIIS filing", leftMargin=18 * mm, rightMargin=18 * mm,
                      topMargin=16 * mm, bottomMargin=16 * mm).build(story)
    return buf.getvalue()


def bar_chart(title: str, data: dict[str, int], width: float = 170 * mm) -> Drawing:
    """A horizontal bar chart of counts (reportlab.graphics)."""
    f = _font()
    items = list(data.items())[:20] or [("-", 0)]
    height = 30 + 14 * len(items)
    d = Drawing(width, height + 20)
    d.add(String(0, height + 6, title, fontName=f, fontSize=10))
    ch = HorizontalBarChart()
    ch.x, ch.y, ch.width, ch.height = 120, 10, width - 140, height - 10
    ch.data = [[v for _, v in items]]
    ch.categoryAxis.categoryNames = [k[:40] for k, _ in items]
    ch.categoryAxis.labels.fontName = f
    ch.categoryAxis.labels.fontSize = 7
    ch.valueAxis.valueMin = 0
    ch.valueAxis.labels.fontSize = 7
    ch.bars[0].fillColor = colors.HexColor("#4a77b4")
    d.add(ch)
    return d


def report_pdf(title: str, sections: list[tuple[str, Any]]) -> bytes:
    """A report: each section is (heading, rows as a list of lists | a dict of counts → chart)."""
    t, h, _ = _styles()
    story: list[Any] = [Paragraph(_esc(title), t)]
    for heading, content in sections:
        story.append(Paragraph(_esc(heading), h))
        if isinstance(content, dict):
            story.append(bar_chart(heading, content))
        elif content:
            story.append(_table(content, header=True))
        else:
            story.append(Paragraph("—", h))
    buf = io.BytesIO()
    SimpleDocTemplate(buf, pagesize=A4, title=title, leftMargin=15 * mm, rightMargin=15 * mm).build(story)
    return buf.getvalue()
