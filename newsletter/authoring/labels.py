"""The words the layouts print around the author's content, in English (``wording``),
Japanese and Chinese; ``labels:`` in newsletter.yaml and in an issue override them."""

from __future__ import annotations

import datetime as dt

from newsletter.wording import ENGLISH as _EN

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


Override = str | dict[str, str]  # text for every language, or text per language code


def labels_for(lang: str, *overrides: dict[str, Override] | None) -> dict[str, str]:
    """The labels for ``lang`` (its base language, falling back to English), with each of
    ``overrides`` applied in turn (newsletter.yaml's, then an issue's)."""
    labels = {**_EN, **_BY_LANG.get(lang.split("-")[0].lower(), _EN)}
    for given in overrides:
        for name, value in (given or {}).items():
            text = in_lang(value, lang)
            if text is not None:
                labels[name] = text
    return labels


def in_lang(value: Override | None, lang: str) -> str | None:
    """Text for every language as it is; from a mapping, ``lang``'s (or its base language's)."""
    if value is None or isinstance(value, str):
        return value
    return value.get(lang, value.get(lang.split("-")[0].lower()))


def greeting(labels: dict[str, str], name: str) -> str:
    """The greeting for a reader called ``name``. Without a name: ``greeting_no_name``, or
    else the greeting with ``{name}`` and the space before it taken out ("Hi {name}," ->
    "Hi,"; "{name}，你好！" -> "你好！")."""
    name = " ".join(name.split())
    if name:
        return labels["greeting"].format(name=name)
    if labels["greeting_no_name"]:
        return labels["greeting_no_name"]
    left, _, right = labels["greeting"].partition("{name}")
    if not left.strip():  # the name opened the greeting: drop the comma after it too
        right = right.lstrip(" ,，、")
    return (left.rstrip() + right).strip().replace("{{", "{").replace("}}", "}")


# A label and its value ("Paper: ...", "论文：..."); no colon after a question or a full stop.
_COLON = {"ja": "：", "zh": "："}
_CLOSED = tuple("?!.:;…？！。：；")


def joined(head: str, tail: str | None, lang: str) -> str:
    """``head`` followed by ``tail`` as a label and its value, punctuated for ``lang``;
    ``tail`` "": the label alone with its colon (its value follows on the next line)."""
    if tail is None:
        return head
    if head.rstrip().endswith(_CLOSED):  # a full-width mark has its space built in
        return head + ("" if not tail or not head.rstrip()[-1].isascii() else " ") + tail
    colon = _COLON.get(lang.split("-")[0].lower(), ": ")
    return head + (colon if tail else colon.rstrip()) + tail


def format_date(day: dt.date, lang: str) -> str:
    """A date as readers of ``lang`` write it."""
    if lang.split("-")[0].lower() in ("ja", "zh"):
        return f"{day.year}年{day.month}月{day.day}日"
    return f"{_MONTHS.split()[day.month - 1]} {day.day}, {day.year}"
