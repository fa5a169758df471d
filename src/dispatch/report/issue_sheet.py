"""`dispatch report ISSUE --csv FILE`: the report as one CSV for Excel.

Blocks one under the other, an empty line between, each with its own header row:
1. 项目 / 值 — the issue and the headline figures (all channels);
2. the articles, ranked as the terminal report ranks them;
3. the industries;
4. the channels (邮件, 企业微信, 合计), one row each.
"""

from __future__ import annotations

from dispatch import clock
from dispatch.industries import describe
from dispatch.report.figures import DeliveryFigures, IssueFigures
from dispatch.report.sheets import Block, Cell
from dispatch.report.words import KIND_WORDS, channel_word
from dispatch.statewords import ISSUE_WORDS


def percent(value: float | None) -> str:
    """0.3333 → '33.3%'; None (nothing to divide by) → '—'."""
    return "—" if value is None else f"{value * 100:.1f}%"


# Delivery figures as rows, in the report's order: (label, attribute or "open_rate").
DELIVERY_ROWS: tuple[tuple[str, str], ...] = (
    ("发出", "sent"),
    ("退信", "bounced"),
    ("失败", "failed"),
    ("待发", "pending"),
    ("已取消", "cancelled"),
    ("有人打开", "opened_human"),
    ("仅机器打开", "opened_machine_only"),
    ("打开率", "open_rate"),
    ("点击次数", "clicks"),
    ("有点击的份数", "clicked"),
    ("网页阅读次数", "web_reads"),
    ("有网页阅读的份数", "web_readers"),
)


def delivery_cell(figures: DeliveryFigures, attribute: str) -> Cell:
    if attribute == "open_rate":
        return percent(figures.open_rate)
    value: int = getattr(figures, attribute)
    return value


def blocks(f: IssueFigures) -> list[Block]:
    total = f.total
    summary: list[list[Cell]] = [
        ["期刊编号", f.issue_id],
        ["标题", f.title],
        ["期号", f.number or ""],
        ["状态", ISSUE_WORDS[f.status]],
        ["发布时间（北京时间）", clock.show(f.publish_at)],
        ["首份发出（北京时间）", clock.show(f.first_sent_at)],
        ["末份发出（北京时间）", clock.show(f.last_sent_at)],
        ["统计截至（北京时间）", clock.show(f.as_of)],
        ["发出的读者人数", f.readers],
    ]
    summary += [[label, delivery_cell(total, attr)] for label, attr in DELIVERY_ROWS]
    summary += [[f"反馈：{word}", f.feedback[kind]] for kind, word in KIND_WORDS.items()]
    summary.append(["读者反馈合计（回复、留言、投票）", f.from_readers])
    summary += [["对整期：有用", f.issue_votes.get("useful", 0)],
                ["对整期：没用", f.issue_votes.get("not_useful", 0)]]
    articles = Block(
        ["排名", "文章编号", "文章", "栏目", "产业", "点击人数", "点击次数", "阅读人数",
         "阅读次数", "有用", "没用", "留言"],
        [[rank, a.id, a.title, a.section, describe(False, a.industries), a.clicked, a.clicks,
          a.readers, a.reads, a.useful, a.not_useful, a.comments]
         for rank, a in enumerate(f.articles, 1)],
    )
    industries = Block(
        ["产业", "读者", "打开的读者", "打开率"],
        [[i.name, i.readers, i.opened, percent(i.open_rate)] for i in f.industries],
    )
    channels = Block(
        ["渠道", *(label for label, _ in DELIVERY_ROWS)],
        [[name, *(delivery_cell(d, attr) for _, attr in DELIVERY_ROWS)]
         for name, d in [*((channel_word(c), d) for c, d in f.channels.items()),
                         ("合计", total)]],
    )
    return [Block(["项目", "值"], summary), articles, industries, channels]
