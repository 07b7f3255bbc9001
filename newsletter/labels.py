"""The words the layouts print around the author's content, in English, Japanese and
Chinese; newsletter.yaml's ``sections`` overrides the section names."""

from __future__ import annotations

import datetime as dt

_EN = {
    "featured": "Featured news",
    "use_cases": "Use cases",
    "papers": "Papers",
    "articles": "Technical articles",
    "other": "Other topics",
    "highlights": "This week's highlights",
    "contents": "In this issue",
    "more": "More posts",
    "about": "About",
    "paper": "Paper",
    "unsubscribe": "Unsubscribe",
    "view_online": "Read this issue in your browser",
    "issue": "Issue {number}",
    "why": "You receive this email because you subscribed to {name}.",
    "sent_to": "Sent to {email}.",
    "archive": "All issues",
}
_JA = {
    "featured": "今週の注目ニュース",
    "use_cases": "機械学習の活用事例",
    "papers": "論文",
    "articles": "技術記事",
    "other": "その他の話題",
    "highlights": "今週のハイライト",
    "contents": "今号の内容",
    "more": "その他の記事",
    "about": "このニュースレターについて",
    "paper": "論文",
    "unsubscribe": "配信停止",
    "view_online": "ブラウザで読む",
    "issue": "第{number}号",
    "why": "{name} に登録いただいたため、このメールをお送りしています。",
    "sent_to": "送信先: {email}",
    "archive": "バックナンバー",
}
_ZH = {
    "featured": "本周精选",
    "use_cases": "机器学习应用案例",
    "papers": "论文",
    "articles": "技术文章",
    "other": "其他话题",
    "highlights": "本周要点",
    "contents": "本期内容",
    "more": "更多文章",
    "about": "关于",
    "paper": "论文",
    "unsubscribe": "退订",
    "view_online": "在浏览器中阅读",
    "issue": "第 {number} 期",
    "why": "您收到这封邮件，是因为您订阅了 {name}。",
    "sent_to": "收件人：{email}",
    "archive": "往期",
}
_BY_LANG = {"en": _EN, "ja": _JA, "zh": _ZH}
_MONTHS = "January February March April May June July August September October November December"


def labels_for(lang: str, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """The labels for ``lang`` (its base language, falling back to English)."""
    base = _BY_LANG.get(lang.split("-")[0].lower(), _EN)
    return {**_EN, **base, **(overrides or {})}


def format_date(day: dt.date, lang: str) -> str:
    """A date as readers of ``lang`` write it."""
    if lang.split("-")[0].lower() in ("ja", "zh"):
        return f"{day.year}年{day.month}月{day.day}日"
    return f"{_MONTHS.split()[day.month - 1]} {day.day}, {day.year}"
