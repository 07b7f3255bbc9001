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
    "subscribe_prompt": "Get the next issue by email",
    "subscribe": "Subscribe",
    "feed": "Atom feed",
    "unsubscribe_title": "Unsubscribe from {name}?",
    "unsubscribe_button": "Unsubscribe {email}",
    "unsubscribed": "You are unsubscribed: {name} will send no more email to {email}.",
    "unsubscribed_title": "Unsubscribed",
    "check_inbox_title": "Check your inbox",
    "confirmed_title": "Subscribed",
    "bad_link": "This link is not valid: it may be mistyped, or too old. Nothing was changed.",
    "check_inbox": "Thank you! If {email} can receive mail, a confirmation link is on its way. "
                   "Open it to finish signing up.",
    "bad_address": "That does not look like an email address.",
    "try_later": "The confirmation mail could not be sent just now. Please try again in a few minutes.",
    "confirm_title": "Confirm your subscription to {name}",
    "confirm_button": "Yes, subscribe {email}",
    "confirmed": "Welcome! {email} is subscribed to {name}.",
    "confirm_subject": "Confirm your subscription to {name}",
    "confirm_body": "Someone, probably you, asked to subscribe {email} to {name}.\n\n"
                    "To confirm, open this link within {hours} hours:\n{url}\n\n"
                    "If it was not you, ignore this email: nothing will happen.",
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
    "subscribe_prompt": "次号をメールで受け取る",
    "subscribe": "購読する",
    "unsubscribe_title": "{name} の配信を停止しますか？",
    "unsubscribe_button": "{email} の配信を停止する",
    "unsubscribed": "配信を停止しました。{name} から {email} へのメールはもう届きません。",
    "unsubscribed_title": "配信を停止しました",
    "check_inbox_title": "メールをご確認ください",
    "confirmed_title": "購読しました",
    "bad_link": "このリンクは無効です（入力ミスか、期限切れの可能性があります）。何も変更していません。",
    "check_inbox": "ありがとうございます。{email} 宛てに確認リンクを送りました。開いて登録を完了してください。",
    "bad_address": "メールアドレスの形式ではないようです。",
    "try_later": "確認メールを送信できませんでした。しばらくしてからもう一度お試しください。",
    "confirm_title": "{name} の購読を確認",
    "confirm_button": "{email} で購読する",
    "confirmed": "ようこそ！{email} で {name} を購読しました。",
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
    "subscribe_prompt": "通过邮件接收下一期",
    "subscribe": "订阅",
    "unsubscribe_title": "退订 {name}？",
    "unsubscribe_button": "退订 {email}",
    "unsubscribed": "已退订：{name} 不会再向 {email} 发送邮件。",
    "unsubscribed_title": "已退订",
    "check_inbox_title": "请查收邮件",
    "confirmed_title": "已订阅",
    "bad_link": "此链接无效（可能输错或已过期）。没有任何更改。",
    "check_inbox": "谢谢！如果 {email} 能收信，确认链接已在路上，打开它即可完成订阅。",
    "bad_address": "这看起来不像邮箱地址。",
    "try_later": "暂时无法发送确认邮件，请稍后再试。",
    "confirm_title": "确认订阅 {name}",
    "confirm_button": "确认用 {email} 订阅",
    "confirmed": "欢迎！{email} 已订阅 {name}。",
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
