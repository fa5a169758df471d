"""The list keeper's day with `dispatch recipients`: import the lists staff keep in Excel,
refuse bad ones whole, export them back, and look after single readers."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, SAMPLE_READERS
from openpyxl import Workbook, load_workbook
from sqlalchemy import update

from dispatch.db.models import Reader
from dispatch.db.session import make_engine, session_factory, transaction
from dispatch.readers import RawTable
from dispatch.readers.validate import build_record, validate_tables

SAMPLE_ROWS = 26
HEADER = "姓名,单位,职务,分组,邮箱,企业微信账号,关注产业,接收方式\n"


def _import(dispatch, *paths, dry_run: bool = False):
    args = ["recipients", "import", *map(str, paths), "--json"]
    if dry_run:
        args.append("--dry-run")
    r = dispatch(*args)
    return r.exit_code, json.loads(r.stdout), r.stderr


def _readers(dispatch, *filters: str) -> list[dict]:
    return json.loads(dispatch.ok("recipients", "list", "--json", *filters))


def _by_name(dispatch) -> dict[str, dict]:
    return {r["name"]: r for r in _readers(dispatch)}


def _counts(data: dict) -> tuple[int, int, int]:
    return data["added"], data["updated"], data["unchanged"]


def _write(path: Path, text: str, encoding: str = "utf-8-sig") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def _set_status(dispatch, email: str, status: str) -> None:
    engine = make_engine(dispatch.db_url)
    with transaction(session_factory(engine)) as s:
        s.execute(update(Reader).where(Reader.email == email).values(status=status))
    engine.dispose()


# --- the sample list ---------------------------------------------------------------------


def test_sample_imports_then_reimport_is_unchanged(dispatch):
    code, data, _ = _import(dispatch, SAMPLE_READERS)
    assert code == 0, data["errors"]
    assert _counts(data) == (SAMPLE_ROWS, 0, 0) and data["errors"] == []
    readers = _by_name(dispatch)
    assert len(readers) == SAMPLE_ROWS
    wang = readers["王建国"]
    assert wang["follows_all"] is True and wang["industries"] == []
    assert wang["channels"] == ["email", "wecom"] and wang["group"] == "市领导"
    # 接收方式 empty: every channel the reader has an address for.
    assert readers["李红梅"]["channels"] == ["email", "wecom"]
    assert readers["韩雪"]["channels"] == ["email"]
    assert readers["唐志刚"]["channels"] == ["wecom"] and readers["唐志刚"]["email"] is None
    # 接收方式 chosen: only that one, even with both addresses.
    assert readers["何丽萍"]["channels"] == ["wecom"] and readers["何丽萍"]["email"]
    assert readers["李红梅"]["industries"] == ["it", "equipment", "nev"]
    assert readers["彭文静"]["status"] == "inactive"

    code, again, _ = _import(dispatch, SAMPLE_READERS)
    assert code == 0 and _counts(again) == (0, 0, SAMPLE_ROWS)
    assert _by_name(dispatch) == readers


def test_human_output_has_a_table_of_counts(dispatch_sqlite):
    out = dispatch_sqlite.ok("recipients", "import", str(SAMPLE_READERS))
    assert "新增" in out and "未变" in out and str(SAMPLE_ROWS) in out
    assert "王建国" not in out  # counts, not people


def test_dry_run_counts_and_writes_nothing(dispatch):
    code, data, _ = _import(dispatch, SAMPLE_READERS, dry_run=True)
    assert code == 0 and _counts(data) == (SAMPLE_ROWS, 0, 0) and data["dry_run"] is True
    assert _readers(dispatch) == []
    dispatch.ok("recipients", "import", str(SAMPLE_READERS))
    changed = _write(
        dispatch.home / "changed.csv",
        HEADER + "王建国,中共许昌市委,书记,市领导,wangjianguo@example.gov.cn,WangJianGuo,全部,\n",
    )
    before = _readers(dispatch)
    code, data, _ = _import(dispatch, changed, dry_run=True)
    assert code == 0 and _counts(data) == (0, 1, 0)
    assert data["changes"][0]["fields"] == ["position"]
    assert _readers(dispatch) == before


# --- encodings and formats ---------------------------------------------------------------


def _sample_cells() -> list[list[str]]:
    return list(csv.reader(io.StringIO(SAMPLE_READERS.read_text(encoding="utf-8-sig"))))


def test_utf8_bom_gb18030_and_xlsx_give_the_same_readers(dispatch_sqlite, tmp_path):
    d = dispatch_sqlite
    text = SAMPLE_READERS.read_text(encoding="utf-8-sig")
    plain = _write(tmp_path / "plain.csv", text, "utf-8")
    gbk = _write(tmp_path / "gbk.csv", text, "gb18030")
    assert not gbk.read_bytes().startswith(b"\xef\xbb\xbf")
    xlsx = tmp_path / "list.xlsx"
    wb = Workbook()
    ws = wb.active
    for row in _sample_cells():
        ws.append(row)
    wb.save(xlsx)

    code, data, _ = _import(d, plain)
    assert code == 0 and _counts(data) == (SAMPLE_ROWS, 0, 0)
    first = _by_name(d)
    for other in (gbk, xlsx, SAMPLE_READERS):
        code, data, _ = _import(d, other)
        assert code == 0, data["errors"]
        assert _counts(data) == (0, 0, SAMPLE_ROWS), other.name
    assert _by_name(d) == first


def test_gbk_only_text_and_utf16_are_read(dispatch_sqlite, tmp_path):
    rows = HEADER + "欧阳燕,许昌市商务局,科长,市直部门,ouyang@example.gov.cn,,食品、轻纺,邮件\n"
    code, data, _ = _import(dispatch_sqlite, _write(tmp_path / "gbk.csv", rows, "gbk"))
    assert code == 0 and data["added"] == 1
    tsv = rows.replace(",", "\t")
    code, data, _ = _import(dispatch_sqlite, _write(tmp_path / "unicode.csv", tsv, "utf-16"))
    assert code == 0 and _counts(data) == (0, 0, 1)
    assert _by_name(dispatch_sqlite)["欧阳燕"]["industries"] == ["food", "textile"]


def test_xlsx_ids_typed_as_numbers_keep_their_digits(dispatch_sqlite, tmp_path):
    path = tmp_path / "numbers.xlsx"
    wb = Workbook()
    ws = wb.active
    ws.append(["姓名", "企业微信账号", "关注产业", "接收方式"])
    ws.append(["甲", 13800138000, "食品", "企业微信"])
    ws.append(["乙", 13800138001.0, "食品", None])
    ws.append([None, None, None, None])  # a blank row in the middle is skipped
    ws.append(["丙", "bing", "全部", "企业微信"])
    wb.save(path)
    code, data, _ = _import(dispatch_sqlite, path)
    assert code == 0, data["errors"]
    assert data["added"] == 3
    readers = _by_name(dispatch_sqlite)
    assert readers["甲"]["wecom_userid"] == "13800138000"
    assert readers["乙"]["wecom_userid"] == "13800138001"
    assert readers["乙"]["channels"] == ["wecom"] and readers["丙"]["follows_all"] is True


def test_title_line_above_the_header_is_skipped_and_rows_keep_their_numbers(dispatch_sqlite,
                                                                           tmp_path):
    path = tmp_path / "titled.xlsx"
    wb = Workbook()
    ws = wb.active
    ws.append(["许昌竞争情报快递读者名单（2025 年）"])
    ws.append([])
    ws.append(["姓名", "邮箱", "关注产业"])
    ws.append(["甲", "jia@example.com", "食品"])
    ws.append(["乙", "yi@example", "食品"])
    wb.save(path)
    code, data, _ = _import(dispatch_sqlite, path)
    assert code == 1
    assert [(e["row"], e["column"]) for e in data["errors"]] == [(5, "邮箱")]


def test_english_headers_with_spaces_and_case(dispatch_sqlite, tmp_path):
    text = (" Name ,Company,TITLE,Group, E-mail ,WeCom_UserID,Industries,Channels,Status,备注\n"
            "Li Lei,Acme,CTO,重点企业,Li.Lei@Example.COM,lilei,"
            "\"it; materials | 生物医药，新能源汽车\",both,active,随便写\n")
    code, data, _ = _import(dispatch_sqlite, _write(tmp_path / "en.csv", text))
    assert code == 0, data["errors"]
    assert data["ignored_columns"] == [{"file": str(tmp_path / "en.csv"), "column": "备注"}]
    r = _by_name(dispatch_sqlite)["Li Lei"]
    assert r["email"] == "Li.Lei@example.com"  # normalized: domain lower-cased
    assert r["industries"] == ["it", "materials", "biomed", "nev"]
    assert r["channels"] == ["email", "wecom"] and r["organization"] == "Acme"


# --- bad input: a clear message, nothing written -----------------------------------------


def _rand_bytes(n: int) -> bytes:
    return random.Random(7).randbytes(n)


BAD = [
    # (file name, content, row, column, words the message must carry)
    ("empty.csv", b"", None, None, ["文件为空"]),
    ("blank.csv", "\ufeff\r\n\r\n".encode(), None, None, ["文件为空"]),
    ("picture.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + _rand_bytes(200), None, None, ["PNG"]),
    ("noise.csv", _rand_bytes(3000), None, None, ["不是文本表格"]),
    ("noise.xlsx", _rand_bytes(3000), None, None, ["不是有效的 Excel"]),
    ("list.xls", b"\xd0\xcf\x11\xe0" + _rand_bytes(100), None, None, ["不支持", ".xls"]),
    ("list.txt", HEADER.encode(), None, None, ["不支持", ".txt"]),
    ("no-industries.csv", "姓名,邮箱\n张三,z@example.com\n".encode(), 1, "关注产业",
     ["缺少必填列“关注产业”"]),
    ("no-address.csv", "姓名,关注产业\n张三,食品\n".encode(), 1, "邮箱", ["邮箱", "企业微信账号"]),
    ("bad-email.csv", (HEADER + "张三,,,,zhang@@example.com,,食品,\n").encode(), 2, "邮箱",
     ["zhang@@example.com", "格式不正确"]),
    ("fullwidth-at.csv", (HEADER + "张三,,,,zhang＠example.com,,食品,\n").encode(), 2, "邮箱",
     ["全角"]),
    ("bad-wecom.csv", (HEADER + "张三,,,,,zhang san!,食品,\n").encode(), 2, "企业微信账号",
     ["zhang san!"]),
    ("unknown-industry.csv", (HEADER + "张三,,,,z@example.com,,新能源车、食品,\n").encode(), 2,
     "关注产业", ["未知产业“新能源车”，是否应为“新能源汽车”？"]),
    ("same-email.csv", (HEADER + "张三,,,,z@example.com,,食品,\n李四,,,,Z@EXAMPLE.COM,,建材,\n")
     .encode(), 3, "邮箱", ["重复", "第 2 行"]),
    ("same-wecom.csv", (HEADER + "张三,,,,,zs,食品,\n李四,,,,,zs,建材,\n").encode(), 3,
     "企业微信账号", ["重复", "第 2 行"]),
    ("newline.csv", (HEADER + "\"张\n三\",,,,z@example.com,,食品,\n").encode(), 2, "姓名",
     ["换行"]),
    ("control.csv", (HEADER + "张\x07三,,,,z@example.com,,食品,\n").encode(), 2, "姓名",
     ["控制字符", "U+0007"]),
    ("empty-name.csv", (HEADER + ",,,,z@example.com,,食品,\n").encode(), 2, "姓名", ["姓名为空"]),
    ("no-channel.csv", (HEADER + "张三,单位,,,,,食品,\n").encode(), 2, "邮箱",
     ["没有邮箱，也没有企业微信账号"]),
    ("channel-without-address.csv", (HEADER + "张三,,,,z@example.com,,食品,企业微信\n").encode(),
     2, "接收方式", ["企业微信账号为空"]),
    ("unknown-channel.csv", (HEADER + "张三,,,,z@example.com,,食品,短信\n").encode(), 2,
     "接收方式", ["短信"]),
    ("empty-industries.csv", (HEADER + "张三,,,,z@example.com,,,\n").encode(), 2, "关注产业",
     ["关注产业为空"]),
    ("unquoted-comma.csv", (HEADER + "张三,许昌,发改委,,,z@example.com,,食品,邮件\n").encode(), 2,
     None, ["多出"]),
    ("bad-status.csv", ("姓名,邮箱,关注产业,状态\n张三,z@example.com,食品,离职\n").encode(), 2,
     "状态", ["离职"]),
]


@pytest.mark.parametrize(("name", "content", "row", "column", "words"), BAD,
                         ids=[b[0] for b in BAD])
def test_bad_list_is_refused_with_file_row_and_column(dispatch_sqlite, tmp_path, name, content,
                                                      row, column, words):
    d = dispatch_sqlite
    d.ok("recipients", "import", str(SAMPLE_READERS))
    before = _readers(d)
    path = tmp_path / name
    path.write_bytes(content)
    good = _write(tmp_path / "good.csv", HEADER + "新人,单位,,,new@example.com,,食品,\n")
    code, data, stderr = _import(d, good, path)
    assert code == 1
    assert _counts(data) == (0, 0, 0)
    errors = [e for e in data["errors"] if e["file"] == str(path)]
    assert errors, data["errors"]
    e = errors[-1] if name.startswith("same-") else errors[0]
    assert (e["row"], e["column"]) == (row, column), e
    for word in words:
        assert word in e["message"], e
    assert "没有写入任何内容" in stderr
    assert _readers(d) == before  # not even the good file's reader


def test_human_errors_name_file_row_and_column(dispatch_sqlite, tmp_path):
    path = _write(tmp_path / "bad.csv", HEADER + "张三,,,,z@example.com,,新能源车,\n")
    r = dispatch_sqlite("recipients", "import", str(path))
    assert r.exit_code == 1
    assert f"{path}:2 列“关注产业”: 未知产业“新能源车”，是否应为“新能源汽车”？" in r.stderr


def test_all_errors_of_all_files_are_reported_and_duplicates_across_files(dispatch_sqlite,
                                                                          tmp_path):
    a = _write(tmp_path / "a.csv", HEADER + "张三,,,,z@example.com,,食品,\n李四,,,,bad,,食品,\n")
    b = _write(tmp_path / "b.csv", HEADER + "王五,,,,w@example.com,,化学,\n赵六,,,,z@example.com,,建材,\n")
    code, data, _ = _import(dispatch_sqlite, a, b)
    assert code == 1
    got = [(Path(e["file"]).name, e["row"], e["column"]) for e in data["errors"]]
    assert got == [("a.csv", 3, "邮箱"), ("b.csv", 2, "关注产业"), ("b.csv", 3, "邮箱")]
    assert f"{a} 第 2 行" in data["errors"][-1]["message"]
    assert _readers(dispatch_sqlite) == []


def test_bad_row_among_updates_leaves_every_reader_as_it_was(dispatch, tmp_path):
    """All or nothing, on both databases: adds and updates before the bad row roll back."""
    dispatch.ok("recipients", "import", str(SAMPLE_READERS))
    before = _readers(dispatch)
    text = (HEADER
            + "王建国,中共许昌市委,书记,市领导,wangjianguo@example.gov.cn,WangJianGuo,食品,\n"
            + "新人,单位,,,new@example.com,,食品,\n"
            # email of 李红梅, WeChat Work id of 赵志强: which one is it?
            + "某人,,,,lihongmei@example.gov.cn,ZhaoZhiQiang,食品,\n")
    code, data, _ = _import(dispatch, _write(tmp_path / "mixed.csv", text))
    assert code == 1
    assert len(data["errors"]) == 1 and data["errors"][0]["row"] == 4
    assert "李红梅" in data["errors"][0]["message"] and "赵志强" in data["errors"][0]["message"]
    assert _readers(dispatch) == before


def test_two_rows_naming_one_reader_are_refused(dispatch_sqlite, tmp_path):
    d = dispatch_sqlite
    d.ok("recipients", "import", str(SAMPLE_READERS))
    text = HEADER + "李红梅,,,,lihongmei@example.gov.cn,,食品,\n李红梅,,,,,LiHongMei,建材,\n"
    code, data, _ = _import(d, _write(tmp_path / "twice.csv", text))
    assert code == 1 and data["errors"][0]["row"] == 3 and "第 2 行" in data["errors"][0]["message"]


def test_exit_code_and_message_from_the_real_command(tmp_path):
    bad = _write(tmp_path / "bad.csv", HEADER + "张\x01三,,,,z@example.com,,食品,\n")
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "d.db"}"\n', encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "DISPATCH_LOG_LEVEL": "WARNING"}
    run = subprocess.run(
        [sys.executable, "-m", "dispatch", "--config", str(config), "recipients", "import", str(bad)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert run.returncode == 1
    assert f"{bad}:2 列“姓名”" in run.stderr and "没有写入任何内容" in run.stderr


# --- identity, status --------------------------------------------------------------------


def test_reader_is_found_by_wecom_id_when_the_email_is_new(dispatch, tmp_path):
    dispatch.ok("recipients", "import", str(SAMPLE_READERS))
    text = HEADER + "唐志刚,许昌云数信息技术有限公司,董事长,重点企业,tang@ys.example.com,ys_tangzhigang,全部,\n"
    code, data, _ = _import(dispatch, _write(tmp_path / "tang.csv", text))
    assert code == 0 and _counts(data) == (0, 1, 0)
    assert data["changes"][0]["fields"] == ["position", "email", "follows_all", "industries", "channels"]
    tang = _by_name(dispatch)["唐志刚"]
    assert tang["email"] == "tang@ys.example.com" and tang["channels"] == ["email", "wecom"]
    assert tang["follows_all"] is True and len(_readers(dispatch)) == SAMPLE_ROWS


def test_unsubscribed_reader_stays_unsubscribed(dispatch, tmp_path):
    dispatch.ok("recipients", "import", str(SAMPLE_READERS))
    _set_status(dispatch, "lihongmei@example.gov.cn", "unsubscribed")
    code, data, _ = _import(dispatch, SAMPLE_READERS)  # says 正常
    assert code == 0 and _counts(data) == (0, 0, SAMPLE_ROWS)
    li = _by_name(dispatch)["李红梅"]
    assert li["status"] == "unsubscribed"
    assert data["kept_unsubscribed"] == [
        {"file": str(SAMPLE_READERS), "row": 3, "id": li["id"], "name": "李红梅"}
    ]
    # Nor by `activate`, unless staff say the reader asked.
    r = dispatch("recipients", "activate", "lihongmei@example.gov.cn")
    assert r.exit_code == 1 and "--resubscribe" in r.stderr
    dispatch.ok("recipients", "activate", "lihongmei@example.gov.cn", "--resubscribe")
    assert _by_name(dispatch)["李红梅"]["status"] == "active"


def test_status_column_absent_leaves_status_alone(dispatch_sqlite, tmp_path):
    d = dispatch_sqlite
    d.ok("recipients", "import", str(SAMPLE_READERS))
    d.ok("recipients", "deactivate", "WangJianGuo")
    text = HEADER + "王建国,中共许昌市委,副书记,市领导,wangjianguo@example.gov.cn,WangJianGuo,全部,邮件、企业微信\n"
    code, data, _ = _import(d, _write(tmp_path / "no-status.csv", text))
    assert code == 0 and _counts(data) == (0, 0, 1)
    assert _by_name(d)["王建国"]["status"] == "inactive"
    code, data, _ = _import(d, _write(tmp_path / "with-status.csv",
                                      text.replace("接收方式\n", "接收方式,状态\n").rstrip() + ",正常\n"))
    assert code == 0 and _counts(data) == (0, 1, 0)
    assert _by_name(d)["王建国"]["status"] == "active"


def test_channels_column_absent_keeps_channels_empty_cell_takes_every_address(dispatch_sqlite,
                                                                              tmp_path):
    d = dispatch_sqlite
    d.ok("recipients", "import", str(SAMPLE_READERS))
    assert _by_name(d)["何丽萍"]["channels"] == ["wecom"]
    row = "何丽萍,中共许昌市魏都区委,书记,县区领导,helping@example.gov.cn,HeLiPing,全部"
    no_column = HEADER.replace(",接收方式", "") + row + "\n"
    code, data, _ = _import(d, _write(tmp_path / "no-channels.csv", no_column))
    assert code == 0 and _counts(data) == (0, 0, 1)
    code, data, _ = _import(d, _write(tmp_path / "empty-cell.csv", HEADER + row + ",\n"))
    assert code == 0 and _counts(data) == (0, 1, 0) and data["changes"][0]["fields"] == ["channels"]
    assert _by_name(d)["何丽萍"]["channels"] == ["email", "wecom"]


# --- export ------------------------------------------------------------------------------


def test_export_csv_opens_in_excel_and_imports_back_unchanged(dispatch, tmp_path):
    dispatch.ok("recipients", "import", str(SAMPLE_READERS))
    _set_status(dispatch, "hanxue@kangtai.example.com", "unsubscribed")
    dispatch.ok("recipients", "add", "--name", "O'Neil, \"Jr\"", "--email", "oneil@example.com",
                "--industries", "化工", "--org", "Acme, Inc.")
    out = tmp_path / "export.csv"
    dispatch.ok("recipients", "export", str(out))
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert raw.count(b"\r\n") == SAMPLE_ROWS + 2 and b"\n" not in raw.replace(b"\r\n", b"")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert rows[0] == ["姓名", "单位", "职务", "分组", "邮箱", "企业微信账号", "关注产业", "接收方式", "状态"]
    wang = next(r for r in rows if r[0] == "王建国")
    assert wang[6:] == ["全部", "邮件、企业微信", "正常"]
    li = next(r for r in rows if r[0] == "李红梅")
    assert li[6] == "新一代信息技术、智能装备、新能源汽车"
    assert next(r for r in rows if r[0] == "韩雪")[8] == "退订"

    before = _readers(dispatch)
    code, data, _ = _import(dispatch, out)
    assert code == 0 and _counts(data) == (0, 0, SAMPLE_ROWS + 1)
    assert data["kept_unsubscribed"] == []  # the list itself says 退订
    assert _readers(dispatch) == before


def test_export_xlsx_imports_back_unchanged(dispatch_sqlite, tmp_path):
    d = dispatch_sqlite
    d.ok("recipients", "import", str(SAMPLE_READERS))
    d.ok("recipients", "add", "--name", "数字", "--wecom", "13800138000", "--industries", "食品")
    out = tmp_path / "export.xlsx"
    d.ok("recipients", "export", str(out))
    ws = load_workbook(out).active
    assert ws["A1"].value == "姓名" and ws.max_row == SAMPLE_ROWS + 2
    assert ws.cell(row=ws.max_row, column=6).value == "13800138000"
    code, data, _ = _import(d, out)
    assert code == 0 and _counts(data) == (0, 0, SAMPLE_ROWS + 1)


def test_export_filters_and_refuses_other_formats(dispatch_sqlite, tmp_path):
    d = dispatch_sqlite
    d.ok("recipients", "import", str(SAMPLE_READERS))
    out = tmp_path / "leaders.csv"
    d.ok("recipients", "export", str(out), "--group", "市领导")
    assert len(out.read_text(encoding="utf-8-sig").splitlines()) == 1 + 4
    r = d("recipients", "export", str(tmp_path / "x.json"))
    assert r.exit_code == 1 and "只能导出为 CSV 或 XLSX 文件" in r.stderr


# --- list / show / add / set / deactivate ------------------------------------------------


def test_list_filters(dispatch):
    dispatch.ok("recipients", "import", str(SAMPLE_READERS))

    def names(*filters: str) -> set[str]:
        return {r["name"] for r in _readers(dispatch, *filters)}

    everyone = names()
    food = names("--industry", "食品")
    assert {"杨秀兰", "曹建军", "马俊峰"} <= food and "王建国" in food  # 全部 follows 食品 too
    assert "韩雪" not in food and names("--industry", "food") == food
    assert names("--group", "市领导") == {"王建国", "李红梅", "赵志强", "陈晓东"}
    wecom = names("--channel", "企业微信")
    assert "赵志强" in wecom and "韩雪" not in wecom and names("--channel", "wecom") == wecom
    assert names("--channel", "邮件") | wecom == everyone
    assert names("--status", "停用") == {"彭文静"} == names("--status", "inactive")
    assert names("--group", "重点企业", "--industry", "新材料") == {"罗晓军", "宋佳琪", "邓立新"}
    r = dispatch("recipients", "list", "--group", "市领导", "--wide", env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "姓名" in r.stdout and "关注产业" in r.stdout
    assert "lihongmei@example.gov.cn" in r.stdout and "新一代信息技术、智能装备" in r.stdout
    r = dispatch("recipients", "list", "--industry", "新能源车")
    assert r.exit_code == 2 and "新能源汽车" in r.stderr


def test_show_by_email_wecom_id_or_number(dispatch_sqlite):
    d = dispatch_sqlite
    d.ok("recipients", "import", str(SAMPLE_READERS))
    by_email = json.loads(d.ok("recipients", "show", "WangJianGuo@Example.gov.cn", "--json"))
    by_wecom = json.loads(d.ok("recipients", "show", "wangjianguo", "--json"))
    by_id = json.loads(d.ok("recipients", "show", str(by_email["id"]), "--json"))
    assert by_email == by_wecom == by_id and by_email["name"] == "王建国"
    assert "王建国" in d.ok("recipients", "show", f"id:{by_id['id']}")
    r = d("recipients", "show", "nobody@example.com")
    assert r.exit_code == 1 and "没有邮箱、企业微信账号或编号为“nobody@example.com”的读者" in r.stderr
    # The hint is a command to copy, whole on its line.
    assert "dispatch recipients find nobody@example.com\n" in r.stderr


def test_add_checks_like_an_import(dispatch):
    reader = json.loads(dispatch.ok(
        "recipients", "add", "--name", "刘洋", "--email", "Liu.Yang@Example.COM", "--wecom", "liuyang",
        "--industries", "生物医药，新材料", "--org", "许昌市卫健委", "--position", "主任",
        "--group", "市直部门", "--json",
    ))
    assert reader["email"] == "Liu.Yang@example.com" and reader["channels"] == ["email", "wecom"]
    assert reader["industries"] == ["materials", "biomed"] and reader["status"] == "active"
    for args, words in [
        (("--name", "甲", "--email", "bad@", "--industries", "食品"), ["--email", "格式不正确"]),
        (("--name", "甲", "--email", "a@example.com", "--industries", "新能源车"), ["新能源汽车"]),
        (("--name", "甲", "--industries", "食品"), ["没有邮箱"]),
        (("--name", "甲\n乙", "--email", "a@example.com", "--industries", "食品"), ["换行"]),
        (("--name", "甲", "--email", "liu.yang@example.com", "--industries", "食品"),
         ["已属于", "刘洋"]),
        (("--name", "甲", "--wecom", "LIUYANG", "--industries", "食品"), ["已属于"]),
        (("--name", "甲", "--email", "a@example.com", "--industries", "食品", "--channels", "企业微信"),
         ["没有企业微信账号"]),
    ]:
        r = dispatch("recipients", "add", *args)
        assert r.exit_code == 1, args
        for word in words:
            assert word in r.stderr, (args, r.stderr)
    assert len(_readers(dispatch)) == 1


def test_set_changes_only_what_is_given(dispatch):
    dispatch.ok("recipients", "import", str(SAMPLE_READERS))
    before = _by_name(dispatch)["李红梅"]
    out = dispatch.ok("recipients", "set", "LiHongMei", "--industries", "全部", "--position", "常务副市长")
    assert "已修改职务、关注产业" in out
    after = _by_name(dispatch)["李红梅"]
    assert after["follows_all"] is True and after["position"] == "常务副市长"
    assert {k: v for k, v in after.items() if k not in ("follows_all", "industries", "position", "updated_at")} \
        == {k: v for k, v in before.items() if k not in ("follows_all", "industries", "position", "updated_at")}
    # Removing the email drops the email channel.
    dispatch.ok("recipients", "set", "LiHongMei", "--email", "")
    after = _by_name(dispatch)["李红梅"]
    assert after["email"] is None and after["channels"] == ["wecom"]
    # Taking another reader's address, or leaving no address at all, is refused.
    r = dispatch("recipients", "set", "LiHongMei", "--email", "wangjianguo@example.gov.cn")
    assert r.exit_code == 1 and "王建国" in r.stderr
    r = dispatch("recipients", "set", "LiHongMei", "--wecom", "")
    assert r.exit_code == 1 and "没有邮箱" in r.stderr
    r = dispatch("recipients", "set", "LiHongMei")
    assert r.exit_code == 2
    assert "没有变化" in dispatch.ok("recipients", "set", "LiHongMei", "--group", "市领导")


def test_deactivate_and_activate(dispatch_sqlite):
    d = dispatch_sqlite
    d.ok("recipients", "import", str(SAMPLE_READERS))
    assert "已停用" in d.ok("recipients", "deactivate", "WangJianGuo")
    assert _by_name(d)["王建国"]["status"] == "inactive"
    assert "本来就是停用状态" in d.ok("recipients", "deactivate", "wangjianguo@example.gov.cn")
    assert "已恢复发送" in d.ok("recipients", "activate", "WangJianGuo")
    assert _by_name(d)["王建国"]["status"] == "active"
    assert d("recipients", "deactivate", "nobody").exit_code == 1


# --- the pure part -----------------------------------------------------------------------


def test_validate_is_pure_and_reports_header_row_numbers():
    table = RawTable(
        file="x.csv", header_row=3, header=["姓名", "企业微信账号", "关注产业", "接收方式"],
        rows=[(4, ["甲", "jia", "食品、建材", "邮件、企业微信"]), (6, ["乙", "yi", "全部", ""])],
    )
    checked = validate_tables([table])
    # No 邮箱 column: whether 甲 has an email is for the database to say (apply checks it).
    assert checked.errors == []
    assert [(r.name, r.email, r.follows_all, r.industries, r.channels, r.row)
            for r in checked.records] == [
        ("甲", None, False, ("food", "building"), ("email", "wecom"), 4),
        ("乙", None, True, (), (), 6),
    ]
    record, errors = build_record({"name": "丙", "email": "", "industries": "it"}, file="cli",
                                  row=None, need_identity=False)
    assert errors == [] and record.email == "" and record.industries == ("it",)


def test_the_same_change_made_twice_at_once_is_made_and_logged_once(sessions):
    """Two requests that both read the reader as active (two one-click unsubscribes, a
    page and an unsubscribe mail) and both unsubscribe: one change, one log row."""
    from sqlalchemy import select

    from dispatch.db.models import ReaderChange
    from dispatch.readers.apply import set_status

    with transaction(sessions) as s:
        s.add(Reader(name="王建国", email="wang@example.gov.cn"))
    first, second = sessions(), sessions()
    try:
        a = first.scalar(select(Reader))
        b = second.scalar(select(Reader))
        assert a.status == b.status == "active"
        assert set_status(first, a, "unsubscribed", source="one-click") is True
        first.commit()
        assert set_status(second, b, "unsubscribed", source="mail") is False
        second.commit()
    finally:
        first.close()
        second.close()
    with sessions() as s:
        changes = s.execute(select(ReaderChange.source, ReaderChange.old, ReaderChange.new)).all()
        assert [tuple(c) for c in changes] == [("one-click", "active", "unsubscribed")]
        assert s.scalar(select(Reader.status)) == "unsubscribed"
