"""`dispatch preview`: exactly what one reader would get, in each form."""

from __future__ import annotations

import email
import email.policy
import json

from conftest import SAMPLE_ISSUE, SAMPLE_READERS

SHANGHAI = "上海国际科技创新中心：从“建框架”向“强功能”跃升"


def _setup(dispatch) -> int:
    dispatch.ok("recipients", "import", str(SAMPLE_READERS))
    return json.loads(dispatch.ok("issues", "ingest", str(SAMPLE_ISSUE), "--json"))["id"]


def test_preview_html_text_and_eml_for_a_reader(dispatch_sqlite, tmp_path):
    d = dispatch_sqlite
    issue = str(_setup(d))
    html = d.ok("preview", issue, "--recipient", "lihongmei@example.gov.cn")
    assert "尊敬的李红梅副市长：" in html
    assert "您关注：新一代信息技术、智能装备、新能源汽车" in html
    assert SHANGHAI in html and "<script" not in html
    text = d.ok("preview", issue, "-r", "lihongmei@example.gov.cn", "--format", "text")
    assert "尊敬的李红梅副市长：" in text and "【为您推荐】" in text and "http" in text

    out = tmp_path / "digest.eml"
    r = d("preview", issue, "-r", "lihongmei@example.gov.cn", "--format", "eml", "-o", str(out))
    assert r.exit_code == 0 and "字节" in r.stderr
    msg = email.message_from_bytes(out.read_bytes(), policy=email.policy.default)
    assert msg["To"].addresses[0].display_name == "李红梅"
    assert msg["Subject"].startswith("《许昌竞争情报快递》")
    assert msg["Reply-To"].startswith("feedback+")
    parts = [p.get_content_type() for p in msg.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert "尊敬的李红梅副市长：" in msg.get_body(("html",)).get_content()


def test_preview_wecom_prints_the_message_send_body(dispatch_sqlite):
    d = dispatch_sqlite
    issue = str(_setup(d))
    body = json.loads(d.ok("preview", issue, "-r", "ZhaoZhiQiang", "--format", "wecom"))
    assert body["touser"] == "ZhaoZhiQiang" and body["msgtype"] == "news"
    articles = body["news"]["articles"]
    assert 1 <= len(articles) <= 8
    assert all(len(a["title"].encode()) <= 128 for a in articles)


def test_preview_refusals(dispatch_sqlite):
    d = dispatch_sqlite
    issue = str(_setup(d))
    r = d("preview", issue, "-r", "nobody@example.com")
    assert r.exit_code == 1 and "nobody@example.com" in r.stderr
    # 陈晓东 has an email address only.
    r = d("preview", issue, "-r", "chenxiaodong@example.gov.cn", "--format", "wecom")
    assert r.exit_code == 1 and "企业微信" in r.stderr
    r = d("preview", "999", "-r", "chenxiaodong@example.gov.cn")
    assert r.exit_code == 1 and "期刊 999 不存在" in r.stderr
    r = d("preview", issue, "-r", "chenxiaodong@example.gov.cn", "--format", "pdf")
    assert r.exit_code == 2


def test_preview_warns_when_the_reader_is_sent_nothing(dispatch_sqlite, tmp_path):
    d = dispatch_sqlite
    issue = str(_setup(d))
    r = d("preview", issue, "-r", "lihongmei@example.gov.cn")
    assert r.exit_code == 0 and r.stderr == ""
    d.ok("recipients", "deactivate", "lihongmei@example.gov.cn")
    out = tmp_path / "digest.html"
    r = d("preview", issue, "-r", "lihongmei@example.gov.cn", "-o", str(out))
    assert r.exit_code == 0 and "尊敬的李红梅副市长：" in out.read_text(encoding="utf-8")
    assert "停用" in r.stderr and "不会收到任何期刊" in r.stderr
    assert "dispatch recipients activate" in r.stderr
    # 暂停 is how some lists write 停用; 退订 is the reader's own wish.
    lists = tmp_path / "status.csv"
    lists.write_text("姓名,邮箱,关注产业,状态\n李红梅,lihongmei@example.gov.cn,全部,暂停\n"
                     "陈晓东,chenxiaodong@example.gov.cn,全部,退订\n", encoding="utf-8")
    d.ok("recipients", "import", str(lists))
    r = d("preview", issue, "-r", "lihongmei@example.gov.cn")
    assert r.exit_code == 0 and "停用" in r.stderr and "不会收到任何期刊" in r.stderr
    r = d("preview", issue, "-r", "chenxiaodong@example.gov.cn", "--format", "text")
    assert r.exit_code == 0 and "退订" in r.stderr and "--resubscribe" in r.stderr
    assert "尊敬的" in r.stdout
