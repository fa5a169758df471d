"""`dispatch recipients` as staff read it: Chinese throughout, a list that fits the
terminal with every address whole, the machine forms, finding a reader by any part of
a name, organisation or address, and email-validator's reasons in Chinese."""

from __future__ import annotations

import csv
import io
import json
import unicodedata

import pytest
from cli_language import english_words
from conftest import SAMPLE_READERS
from email_validator import EmailNotValidError, validate_email

from dispatch.readers.validate import normalize_email

SAMPLE_ROWS = 26
LONG_ADDRESS = "zhang.weiguo.director@xuchang-development-zone.gov.cn"
LONG_ORG = "许昌经济技术开发区管理委员会发展改革和统计局"
EXTRA = (
    "姓名,单位,职务,分组,邮箱,企业微信账号,关注产业,接收方式\n"
    f"张卫国,{LONG_ORG},局长,市直部门,{LONG_ADDRESS},ZhangWeiGuo,全部,\n"
    "欧阳明月,许昌市,,,Ouyang_MingYue@Example.com,,食品,\n"
    "百分之百,许昌100%公司,,,percent@example.com,,食品,\n"
)


def cells(line: str) -> int:
    """Terminal cells a line takes: East Asian wide characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


@pytest.fixture
def readers(dispatch, tmp_path):
    """The sample list and three more: a long address and organisation among them."""
    extra = tmp_path / "extra.csv"
    extra.write_text(EXTRA, encoding="utf-8")
    dispatch.ok("recipients", "import", str(SAMPLE_READERS), str(extra))
    return dispatch


def _json(d, *args: str) -> list[dict]:
    return json.loads(d.ok("recipients", *args, "--json"))


# --- the list at 80 columns --------------------------------------------------------------


@pytest.mark.parametrize("width", [80, 60])
def test_list_fits_the_terminal_with_every_address_whole(readers, width):
    out = readers.ok("recipients", "list", env={"COLUMNS": str(width)})
    lines = out.splitlines()
    assert lines[0] == f"读者 {SAMPLE_ROWS + 3} 人"
    assert all(cells(line) <= width for line in lines), max(lines, key=cells)
    for r in _json(readers, "list"):
        addresses = [a for a in (r["email"], r["wecom_userid"]) if a]
        assert any(a in line for line in lines for a in addresses), r
        assert any(r["name"] in line for line in lines), r
    # The long address is whole, on a line of its own below its reader's row.
    row = next(i for i, line in enumerate(lines) if "张卫国" in line)
    assert lines[row + 1].strip() == LONG_ADDRESS
    # The organisation is cut short, not wrapped: its start is there, its end is not.
    assert "许昌经" in lines[row] and "…" in lines[row] and LONG_ORG not in out


def test_list_default_columns_and_status(readers):
    out = readers.ok("recipients", "list", env={"COLUMNS": "80"})
    header = out.splitlines()[1].split()
    assert header == ["编号", "姓名", "单位", "地址", "状态"]
    peng = next(line for line in out.splitlines() if "彭文静" in line)
    assert peng.endswith("停用") and "pengwenjing@zhongding.example.com" in peng
    # A reader reached by WeChat Work only shows that account.
    assert "ZhaoZhiQiang" in next(line for line in out.splitlines() if "赵志强" in line)


def test_wide_shows_every_column_uncut(readers):
    out = readers.ok("recipients", "list", "--wide", env={"COLUMNS": "80"})
    lines = out.splitlines()
    assert lines[1].split() == ["编号", "姓名", "单位", "职务", "分组", "邮箱", "企业微信账号",
                                "关注产业", "接收方式", "状态"]
    zhang = next(line for line in lines if "张卫国" in line)
    assert LONG_ORG in zhang and LONG_ADDRESS in zhang and "ZhangWeiGuo" in zhang
    li = next(line for line in lines if "李红梅" in line)
    assert "新一代信息技术、智能装备、新能源汽车" in li and "邮件、企业微信" in li


def test_json_and_csv_carry_the_same_readers(readers):
    listed = _json(readers, "list")
    assert len(listed) == SAMPLE_ROWS + 3
    assert set(listed[0]) == {"id", "name", "organization", "position", "group", "email",
                              "wecom_userid", "follows_all", "industries", "channels",
                              "status", "created_at", "updated_at", "paused_until",
                              "email_suspended_at", "email_bounces"}
    rows = list(csv.reader(io.StringIO(readers.ok("recipients", "list", "--csv"))))
    assert rows[0] == ["编号", "姓名", "单位", "职务", "分组", "邮箱", "企业微信账号", "关注产业",
                       "接收方式", "状态"]
    assert [(int(r[0]), r[1], r[5] or None, r[6] or None) for r in rows[1:]] == [
        (r["id"], r["name"], r["email"], r["wecom_userid"]) for r in listed
    ]
    r = readers("recipients", "list", "--json", "--csv")
    assert r.exit_code == 2 and r.stdout == ""


def test_filters_apply_to_every_form(readers):
    leaders = {"王建国", "李红梅", "赵志强", "陈晓东"}
    assert {r["name"] for r in _json(readers, "list", "--group", "市领导")} == leaders
    rows = list(csv.reader(io.StringIO(readers.ok("recipients", "list", "--csv", "--group", "市领导"))))
    assert {r[1] for r in rows[1:]} == leaders
    out = readers.ok("recipients", "list", "--status", "停用")
    assert "彭文静" in out and "王建国" not in out
    assert readers.ok("recipients", "list", "--group", "无此分组") == "没有符合条件的读者\n"


def test_empty_list_says_how_to_import(dispatch_sqlite):
    out = dispatch_sqlite.ok("recipients", "list")
    assert out.startswith("还没有读者") and "dispatch recipients import " in out
    assert json.loads(dispatch_sqlite.ok("recipients", "list", "--json")) == []


# --- show --------------------------------------------------------------------------------


def test_show_puts_each_field_on_one_line(readers):
    out = readers.ok("recipients", "show", LONG_ADDRESS, env={"COLUMNS": "80"})
    lines = out.splitlines()
    assert lines[0].startswith("读者 ")
    fields = dict(line.split(maxsplit=1) for line in lines[1:])
    assert fields["姓名"] == "张卫国" and fields["单位"] == LONG_ORG
    assert fields["邮箱"] == LONG_ADDRESS and fields["企业微信账号"] == "ZhangWeiGuo"
    assert fields["关注产业"] == "全部" and fields["接收方式"] == "邮件、企业微信"
    assert fields["状态"] == "正常" and "加入时间" in fields


def test_show_with_a_prefix_in_chinese(readers):
    reader = _json(readers, "show", "ZhangWeiGuo")
    assert _json(readers, "show", f"编号:{reader['id']}") == reader
    assert _json(readers, "show", "企业微信：zhangweiguo") == reader


# --- find --------------------------------------------------------------------------------


def _found(d, text: str, *args: str) -> list[str]:
    return [r["name"] for r in _json(d, "find", text, *args)]


def test_find_by_any_part_of_name_org_or_address(readers):
    assert _found(readers, "红梅") == ["李红梅"]
    assert _found(readers, "瑞丰") == ["张伟"]  # 许昌瑞丰发制品有限公司
    assert _found(readers, "LIHONGMEI@EXAMPLE") == ["李红梅"]  # case-insensitive
    assert _found(readers, "zhaozhiqiang") == ["赵志强"]  # a WeChat Work id
    assert _found(readers, "ouyang_mingyue@example.COM") == ["欧阳明月"]
    assert set(_found(readers, "许昌市人民政府")) == {"李红梅", "赵志强", "陈晓东"}
    # % and _ are matched as themselves, not as SQL wildcards.
    assert _found(readers, "100%") == ["百分之百"]
    assert _found(readers, "g_m") == ["欧阳明月"]
    assert _found(readers, "%") == ["百分之百"]
    underscored = [r["name"] for r in _json(readers, "list")
                   if "_" in f"{r['email'] or ''} {r['wecom_userid'] or ''}"]
    assert _found(readers, "_") == underscored and len(underscored) > 1
    # With the list's filters too.
    assert _found(readers, "许昌市人民政府", "--channel", "企业微信") == ["李红梅", "赵志强"]


def test_find_prints_the_forms_of_list(readers):
    out = readers.ok("recipients", "find", "张", env={"COLUMNS": "80"})
    lines = out.splitlines()
    assert lines[0] == "读者 2 人" and all(cells(line) <= 80 for line in lines)
    assert "zhangwei@ruifeng-hair.example.com" in out and LONG_ADDRESS in lines
    wide = readers.ok("recipients", "find", "张", "--wide")
    assert LONG_ORG in wide and "发制品、轻纺" in wide
    rows = list(csv.reader(io.StringIO(readers.ok("recipients", "find", "张", "--csv"))))
    assert [r[1] for r in rows[1:]] == ["张伟", "张卫国"]


def test_find_without_a_match_says_so_and_exits_0(readers):
    r = readers("recipients", "find", "不存在的人")
    assert r.exit_code == 0
    assert r.stdout == "没有找到姓名、单位、邮箱或企业微信账号中含有“不存在的人”的读者\n"
    assert _json(readers, "find", "不存在的人") == []
    rows = list(csv.reader(io.StringIO(readers.ok("recipients", "find", "不存在的人", "--csv"))))
    assert len(rows) == 1 and rows[0][0] == "编号"


# --- email-validator's reasons, in Chinese -----------------------------------------------

BAD_ADDRESSES = [
    ("zhangsan@example", "“@”后面的域名缺少“.”"),
    ("zhangsan", "缺少“@”"),
    ("@example.com", "“@”前面缺少用户名"),
    ("zhangsan@", "“@”后面缺少域名"),
    ("zhang san@example.com", "“@”前面含有不允许的字符：空格"),
    ("张三@example.com", "“@”前面不能有中文等非英文字符"),
    ("zhang,san@example.com", "“@”前面含有不允许的字符：“,”"),
    ("a@b@example.com", "只能有一个“@”"),
    (".zhang@example.com", "不能以“.”开头"),
    ("zhang.@example.com", "“@”前面不能紧挨着“.”"),
    ("zhang..san@example.com", "不能有两个连续的“.”"),
    ("zhang@.example.com", "“@”后面不能紧挨着“.”"),
    ("zhang@example.com.", "不能以“.”结尾"),
    ("zhang@-example.com", "“@”后面不能紧挨着“-”"),
    ("zhang@example-.com", "“.”和“-”不能相邻"),
    ("zhang@ab--cd.com", "“--”"),
    ("zhang@example.123", "不是有效的顶级域名"),
    ("zhang@example.local", "保留的域名"),
    ("zhang@exam_ple.com", "“@”后面的域名含有不允许的字符：“_”"),
    ('"zhang san"@example.com', "不能使用引号"),
    ("zhang@[127.0.0.1]", "方括号"),
    ("张三 <zhang@example.com>", "不要带姓名或尖括号"),
    ("zhang﹫example.com", "“﹫”"),
    ("zhang@" + "x" * 64 + ".com", "最多 63 个字符"),
    ("z" * 250 + "@example.com", "最多 254 个字符"),
    ("zhang@" + "ab." * 90 + "com", "最多 253 个字符"),
]


@pytest.mark.parametrize(("address", "reason"), BAD_ADDRESSES, ids=[a[:30] for a, _ in BAD_ADDRESSES])
def test_email_validator_reasons_are_chinese(address, reason):
    with pytest.raises(ValueError) as caught:
        normalize_email(address)
    message = str(caught.value)
    assert message.startswith(f"邮箱“{address}”")
    assert reason in message and english_words(message) == [], message
    with pytest.raises(EmailNotValidError):  # the library refuses it too
        validate_email(address, check_deliverability=False, allow_smtputf8=False)


GOOD_ADDRESSES = [
    "Li.Lei@Example.COM", "postmaster@EXAMPLE.com", "x+tag@sub.example.gov.cn",
    "o'neil@example.com", "a@例子.中国", "A@XN--FSQ.COM", "user@xn--fiqs8s.cn",
    "z" * 60 + "@" + "y" * 63 + ".com",
]


@pytest.mark.parametrize("address", GOOD_ADDRESSES)
def test_addresses_are_normalized_as_email_validator_does(address):
    expected = validate_email(address, check_deliverability=False, allow_smtputf8=False).normalized
    assert normalize_email(address) == expected
    assert normalize_email(address) == expected  # the domain's cached answer too


def test_import_names_row_column_and_reason_in_chinese(dispatch_sqlite, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("姓名,邮箱,关注产业\n张三,zhangsan@example,食品\n李四,li si@example.com,食品\n",
                    encoding="utf-8")
    r = dispatch_sqlite("recipients", "import", str(path))
    assert r.exit_code == 1
    lines = r.stderr.splitlines()
    assert f"{path}:2 列“邮箱”: 邮箱“zhangsan@example”格式不正确（“@”后面的域名缺少“.”，不完整）" in lines
    assert f"{path}:3 列“邮箱”: 邮箱“li si@example.com”格式不正确（“@”前面含有不允许的字符：空格）" in lines
    r = dispatch_sqlite("recipients", "add", "--name", "王五", "--email", "wang@localhost",
                        "--industries", "食品")
    assert r.exit_code == 1 and "--email（邮箱）：邮箱“wang@localhost”格式不正确（“@”后面的域名缺少“.”" in r.stderr


# --- no English ---------------------------------------------------------------------------

COMMANDS = ["import", "export", "list", "find", "show", "add", "set", "deactivate", "activate"]


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_is_chinese(dispatch_sqlite, command):
    args = ["recipients", *([command] if command else []), "--help"]
    out = dispatch_sqlite.ok(*args, env={"COLUMNS": "80"})
    assert english_words(out) == [], out
    assert all(cells(line) <= 80 for line in out.splitlines())


def test_what_the_commands_print_is_chinese(dispatch_sqlite, tmp_path):
    d = dispatch_sqlite
    bad = tmp_path / "bad.csv"
    bad.write_text("姓名,邮箱,关注产业,备注\n张三,zhangsan@example,新能源车,x\n", encoding="utf-8")
    extra = tmp_path / "extra.csv"
    extra.write_text(EXTRA.replace("接收方式\n", "接收方式,备注\n"), encoding="utf-8")
    outputs = []

    def run(*args: str, code: int = 0) -> None:
        r = d(*args, env={"COLUMNS": "80"})
        assert r.exit_code == code, (args, r.stdout, r.stderr)
        outputs.append((args, r.stdout + r.stderr))

    run("recipients", "list")
    run("recipients", "import", str(SAMPLE_READERS), "--dry-run")
    run("recipients", "import", str(SAMPLE_READERS), str(extra))
    run("recipients", "import", str(bad), code=1)
    run("recipients", "import", str(tmp_path / "missing.xls"), code=1)
    d.ok("recipients", "set", "lihongmei@example.gov.cn", "--group", "市领导 ")
    run("recipients", "import", str(SAMPLE_READERS), "--dry-run")  # would update 李红梅
    run("recipients", "list")
    run("recipients", "list", "--wide")
    run("recipients", "list", "--industry", "新能源车", code=2)
    run("recipients", "find", "许昌")
    run("recipients", "find", "nobody")
    run("recipients", "show", "lihongmei@example.gov.cn")
    run("recipients", "show", "nobody@example.com", code=1)
    run("recipients", "add", "--name", "刘洋", "--email", "liuyang@example.com", "--industries", "食品")
    run("recipients", "add", "--name", "刘洋", "--email", "liuyang@example", "--industries", "新能源车",
        code=1)
    run("recipients", "set", "liuyang@example.com", "--position", "主任")
    run("recipients", "set", "liuyang@example.com", "--position", "主任")
    run("recipients", "set", "liuyang@example.com", code=2)
    run("recipients", "deactivate", "liuyang@example.com")
    run("recipients", "deactivate", "liuyang@example.com")
    run("recipients", "activate", "liuyang@example.com")
    run("recipients", "activate", "liuyang@example.com")
    run("recipients", "export", str(tmp_path / "out.csv"))
    run("recipients", "export", str(tmp_path / "out.json"), code=1)
    run("recipients", "export", str(tmp_path / "no-such-folder" / "out.csv"), code=1)
    # Readers' own data (a WeChat Work account like HeLiPing) is not English to translate.
    data = {v for r in _json(d, "list") for v in (r["wecom_userid"], r["email"], r["name"]) if v}
    for args, text in outputs:
        for value in sorted(data, key=len, reverse=True):
            text = text.replace(value, " ")
        assert english_words(text) == [], (args, text)


def test_unsubscribed_reader_messages_are_chinese(dispatch_sqlite):
    d = dispatch_sqlite
    d.ok("recipients", "import", str(SAMPLE_READERS))
    _unsubscribe(d, "hanxue@kangtai.example.com")
    out = d.ok("recipients", "import", str(SAMPLE_READERS))
    assert "已退订，仍保持退订" in out and english_words(out) == []
    out = d.ok("recipients", "deactivate", "hanxue@kangtai.example.com")
    assert "已退订" in out and english_words(out) == []
    r = d("recipients", "activate", "hanxue@kangtai.example.com")
    assert r.exit_code == 1 and "--resubscribe" in r.stderr and english_words(r.stderr) == []


def _unsubscribe(d, email: str) -> None:
    from sqlalchemy import update

    from dispatch.db.models import Reader
    from dispatch.db.session import make_engine, session_factory, transaction

    engine = make_engine(d.db_url)
    with transaction(session_factory(engine)) as s:
        s.execute(update(Reader).where(Reader.email == email).values(status="unsubscribed"))
    engine.dispose()



# --- pauses, suspended email, the change log ----------------------------------------------


def _db(d):
    """A transaction on the installation's database, for what readers and the bounce rule
    change without the CLI."""
    import contextlib

    from dispatch.db.session import make_engine, session_factory, transaction

    @contextlib.contextmanager
    def session():
        engine = make_engine(d.db_url)
        try:
            with transaction(session_factory(engine)) as s:
                yield s
        finally:
            engine.dispose()

    return session()


def _reader(s, email: str):
    from sqlalchemy import select

    from dispatch.db.models import Reader

    return s.scalar(select(Reader).where(Reader.email == email))


LI = "lihongmei@example.gov.cn"
HAN = "hanxue@kangtai.example.com"


def test_staff_see_a_pause_and_a_suspended_email_and_lift_them(dispatch):
    from datetime import timedelta

    from dispatch import clock
    from dispatch.readers.changes import PAUSE_BY_CODE, pause, pause_end

    d = dispatch
    d.ok("recipients", "import", str(SAMPLE_READERS))
    now = clock.utcnow()
    until = pause_end(PAUSE_BY_CODE["2w"], now)
    with _db(d) as s:
        pause(s, _reader(s, LI), until, source="page")
        han = _reader(s, HAN)
        han.email_suspended_at, han.email_bounces = now - timedelta(hours=1), 3
        li_id, han_id = _reader(s, LI).id, han.id
    day = clock.to_local(until)
    outputs = []

    def run(*args: str) -> str:
        out = d.ok(*args, env={"COLUMNS": "80"})
        outputs.append(out)
        return out

    out = run("recipients", "show", LI)
    assert "正常（暂停）" in out
    assert f"暂停至        {day.year}年{day.month}月{day.day}日（读者自己暂停，到期自动恢复）" in out
    assert "最近的修改" in out and f"网页  暂停至 {clock.show(until)}" in out
    out = run("recipients", "show", HAN)
    assert "正常（退信停发）" in out
    assert (f"邮件退信停发  自 {clock.show(now - timedelta(hours=1))}，连续退信 3 次；"
            f"核实邮箱后恢复：dispatch recipients activate {han_id}") in out

    # The list says so, and filters by it.
    out = run("recipients", "list")
    assert next(line for line in out.splitlines() if "李红梅" in line).endswith("暂停")
    assert next(line for line in out.splitlines() if "韩雪" in line).endswith("退信停发")
    assert [r["id"] for r in _json(d, "list", "--status", "暂停")] == [li_id]
    assert [r["id"] for r in _json(d, "list", "--status", "退信停发")] == [han_id]
    assert li_id not in [r["id"] for r in _json(d, "list", "--status", "正常")]
    r = d("recipients", "list", "--status", "休假")
    assert r.exit_code == 2 and "正常、停用、退订、暂停、退信停发" in r.stderr
    data = _json(d, "show", HAN)
    assert (data["paused_until"], data["email_bounces"]) == (None, 3)
    assert data["email_suspended_at"] == clock.show(now - timedelta(hours=1))
    assert _json(d, "show", LI)["paused_until"] == clock.show(until)
    assert {"paused_until", "email_suspended_at", "email_bounces"} <= set(_json(d, "list")[0])

    # activate lifts both, and the log says staff did it.
    out = run("recipients", "activate", HAN)
    assert out.strip() == f"读者 {han_id}：已恢复发送邮件（退信停发已解除）"
    out = run("recipients", "activate", LI)
    assert out.strip() == f"读者 {li_id}：已取消读者设置的暂停"
    with _db(d) as s:
        han, li = _reader(s, HAN), _reader(s, LI)
        assert (han.email_suspended_at, han.email_bounces, li.paused_until) == (None, 0, None)
    assert _json(d, "list", "--status", "暂停") == [] and _json(d, "list", "--status", "退信停发") == []
    out = run("recipients", "show", HAN)
    assert "工作人员  解除邮件退信停发" in out and "退信停发（" not in out
    changes = _json(d, "show", LI)["changes"]
    assert [(c["source"], c["field"], c["new"]) for c in changes] == [
        ("staff", "paused_until", None), ("page", "paused_until", until.isoformat(timespec="seconds"))]
    assert run("recipients", "activate", LI).strip() == f"读者 {li_id}：本来就是正常状态"

    data = {v for r in _json(d, "list") for v in (r["wecom_userid"], r["email"], r["name"]) if v}
    for text in outputs:
        for value in sorted(data, key=len, reverse=True):
            text = text.replace(value, " ")
        assert english_words(text) == [], text


def test_changes_by_staff_and_imports_are_logged_with_their_source(dispatch, tmp_path):
    d = dispatch
    d.ok("recipients", "import", str(SAMPLE_READERS))
    d.ok("recipients", "set", HAN, "--industries", "生物医药、食品", "--position", "总监")
    changed = tmp_path / "changed.csv"
    changed.write_text(SAMPLE_READERS.read_text(encoding="utf-8").replace(
        "hanxue@kangtai.example.com,,生物医药,,正常", "hanxue@kangtai.example.com,,全部,,退订"),
        encoding="utf-8")
    d.ok("recipients", "import", str(changed))
    out = d.ok("recipients", "show", HAN)
    lines = out.splitlines()
    start = lines.index("  最近的修改")
    # Newest first; the time, then who, then what: every field, so the list's own 职务
    # coming back with the import shows too.
    assert [line.split(None, 2)[2] for line in lines[start + 1:]] == [
        "导入  状态：正常 → 退订",
        "导入  关注产业：生物医药、食品 → 全部",
        "导入  职务：总监 → 研发总监",
        "工作人员  关注产业：生物医药 → 生物医药、食品",
        "工作人员  职务：研发总监 → 总监",
    ], out
    assert english_words(out.replace(HAN, " ")) == []
