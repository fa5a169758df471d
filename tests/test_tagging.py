"""Industry tagging: the shipped rules on the real sample issue, and the mechanics."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import pytest

from dispatch.industries import CODES, GENERAL
from dispatch.tagging import RulesError, explain, load_rules, tag_article
from dispatch.tagging.rules import rules_from_dict

REPO = Path(__file__).resolve().parents[1]
RULES_PATH = REPO / "rules" / "industries.toml"
SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "issue-sample.txt"


@pytest.fixture(scope="module")
def rules():
    return load_rules(RULES_PATH)


@pytest.fixture(scope="module")
def raw_rules() -> dict:
    return tomllib.loads(RULES_PATH.read_text(encoding="utf-8"))


def split_sample(path: Path) -> dict[str, tuple[str, list[str]]]:
    """Articles of the institute's plain-text issue, by title: (title, paragraphs).

    Deliberately tiny and independent of the ingest parser: a `●` line opens a section,
    the next line is the article's title (编者的话 has none), bare numbers are page numbers.
    """
    articles: dict[str, tuple[str, list[str]]] = {}
    body: list[str] = []
    expect_title = False
    for line in path.read_text(encoding="utf-8").splitlines():
        s = line.strip()
        if not s or s.isdigit():
            continue
        if s.startswith("●"):
            section = s[1:].strip()
            expect_title = section != "编者的话"
            if not expect_title:
                body = []
                articles[section] = ("", body)
            continue
        if expect_title:
            body = []
            articles[s] = (s, body)
            expect_title = False
        else:
            body.append(s)
    return articles


@pytest.fixture(scope="module")
def sample():
    return split_sample(SAMPLE)


def tag_sample(sample, rules, title_start: str):
    [key] = [k for k in sample if k.startswith(title_start)]
    title, body = sample[key]
    return tag_article(title, body, rules)


# -- the real sample issue ---------------------------------------------------------


def test_sample_has_four_articles(sample):
    assert len(sample) == 4


def test_editors_note_listing_all_industries_is_general(sample, rules):
    result = tag_sample(sample, rules, "编者的话")
    assert result.codes == [GENERAL]
    assert result.reason == "breadth"
    # Every one of the twelve is named once in it.
    assert set(result.scores) == set(CODES)
    assert "综合" in explain(result)


def test_future_industries_policy_piece_is_general(sample, rules):
    # A piece on 未来产业 and 新质生产力 in general; AI appears once, in a list of
    # example fields next to 量子信息, 元宇宙, 生命健康, 深海空天. As 综合 it still
    # reaches IT readers (general goes to everyone), without claiming to be IT news.
    result = tag_sample(sample, rules, "未来产业是培育新质生产力")
    assert result.codes == [GENERAL]
    assert result.reason == "below_threshold"
    assert 0 < result.scores["it"] < rules.settings.threshold


def test_ip_article_is_it(sample, rules):
    # Tencent's AI cochlear implant patents, Huawei, Baidu, BYD, 区块链+版权.
    result = tag_sample(sample, rules, "让知识产权更好护航")
    assert "it" in result.codes
    assert set(result.codes) <= {"it", "biomed"}
    assert result.scores["it"] == max(result.scores.values())
    kws = [kw for kw, _, _ in result.hits["it"]]
    assert {"AI", "人工智能", "腾讯"} <= set(kws)
    # BYD named once, 新材料 named once: mentioned, not tagged.
    assert "nev" not in result.codes and "materials" not in result.codes


def test_shanghai_report_is_biomed_and_nev(sample, rules):
    result = tag_sample(sample, rules, "上海国际科技创新中心")
    assert {"biomed", "nev"} <= set(result.codes)
    assert result.scores["biomed"] == max(result.scores.values())
    assert len(result.codes) <= rules.settings.max_tags
    # 新能源汽车 counted once as itself, never as 新能源 (which is 节能环保).
    assert ("新能源汽车", 0, 1) in result.hits["nev"]
    assert "新能源" not in [kw for kw, _, _ in result.hits.get("green", [])]
    # 创新生态环境 is an innovation ecosystem, not the environment.
    assert "生态环境" not in [kw for kw, _, _ in result.hits.get("green", [])]
    line = explain(result)
    assert line.startswith("生物医药 ")
    assert "新能源汽车" in line


# -- mechanics -------------------------------------------------------------------


def test_title_hit_outweighs_body_hit(rules):
    in_title = tag_article("瑞贝卡发布年报", ["公司表示，今年经营稳定。"], rules)
    in_body = tag_article("公司发布年报", ["瑞贝卡表示，今年经营稳定。"], rules)
    assert in_title.scores["hair"] == rules.settings.title_weight * in_body.scores["hair"]
    assert in_title.codes == ["hair"]
    assert in_body.codes == [GENERAL]  # one passing mention in the body is not enough
    assert in_title.hits["hair"] == [("瑞贝卡", 1, 0)]


def test_repeated_body_hits_have_diminishing_returns(rules):
    once = tag_article("", ["芯片"], rules).scores["it"]
    four = tag_article("", ["芯片。" * 4], rules).scores["it"]
    assert once == 3.0
    assert four == 3.0 * 3  # 1 + log2(4)


def test_longest_match_first(rules):
    result = tag_article("", ["新能源汽车销量增长。"], rules)
    assert result.hits == {"nev": [("新能源汽车", 0, 1)]}
    assert "green" not in result.scores  # 新能源 inside 新能源汽车 is not counted
    alone = tag_article("", ["新能源装机增长。"], rules)
    assert alone.hits["green"] == [("新能源", 0, 1)]
    both = tag_article("", ["智能装备制造业"], rules)
    assert set(both.scores) == {"equipment"}  # not also 装备 / 装备制造


def test_latin_keywords_match_whole_words_case_insensitively(rules):
    assert tag_article("", ["Please check the MAIL server and EMAIL."], rules).scores == {}
    assert tag_article("", ["Shanghai said"], rules).scores == {}
    hit = tag_article("", ["ai 技术", "语音AI降噪", "ＡＩ芯片"], rules)
    assert ("AI", 0, 3) in hit.hits["it"]
    assert tag_article("", ["采用 BYD 电池"], rules).hits["nev"] == [("BYD", 0, 1)]


def test_ignored_phrases_block_false_hits(rules):
    text = ["严查虚假发票，传承红色基因，共建丝绸之路，聚焦化解矛盾，大众品牌。"]
    assert tag_article("", text, rules).scores == {}


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("瑞贝卡发制品出口增长", "hair"),
        ("许昌假发跨境电商订单火爆", "hair"),
        ("黄河旋风培育钻石扩产", "materials"),
        ("许继集团中标特高压项目", "machinery"),
        ("森源鸿马新能源专用车下线", "nev"),
        ("远东传动轴获评单项冠军", "machinery"),
        ("众品肉制品入选名牌", "food"),
        ("长葛蜂产品走俏", "food"),
        ("禹州中药材价格回升", "biomed"),
        ("大周再生金属产业园扩区", "green"),
        ("首山焦化延伸氢能产业链", "chemical"),
        ("禹州钧瓷与建筑陶瓷", "building"),
        ("许昌家纺企业拓展无纺布产品", "textile"),
        ("工业机器人进入许昌车间", "equipment"),
    ],
)
def test_xuchang_names_in_titles(rules, title, expected):
    result = tag_article(title, [], rules)
    assert expected in result.codes, explain(result)


def test_nonsense_article_is_general(rules):
    result = tag_article(
        "今天天气不错", ["我们去公园散步，看见了许多人。", "晚上吃了饺子。"], rules
    )
    assert result.codes == [GENERAL]
    assert result.reason == "no_hits"
    assert explain(result) == "综合：未命中任何产业关键词"


def test_codes_in_canonical_order_and_capped(rules):
    title = "纺织、芯片、水泥、假发、化肥"
    result = tag_article(title, [], rules)
    assert len(result.codes) == rules.settings.max_tags
    assert result.codes == [c for c in CODES if c in result.codes]


def test_breadth_makes_general(rules):
    paragraphs = [
        f"{name}产业方面，今年要加快发展。"
        for name in (
            "新一代信息技术",
            "新材料",
            "生物医药",
            "智能装备",
            "新能源汽车",
            "节能环保",
            "装备制造",
            "食品",
        )
    ]
    result = tag_article("“6+3+3”产业发展规划", paragraphs, rules)
    assert result.codes == [GENERAL] and result.reason == "breadth"
    assert "8 个产业" in explain(result)


def test_explain_names_keywords_and_title(rules):
    result = tag_article("瑞贝卡假发出口", ["瑞贝卡表示，假发订单充足。"], rules)
    line = explain(result)
    assert line.startswith("发制品 ")
    assert "瑞贝卡×2（标题）" in line and "假发×2（标题）" in line


# -- the rule file -------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "industries.toml"
    p.write_text(text, encoding="utf-8")
    return p


def dump_error(data: dict, source: str = "rules/x.toml") -> RulesError:
    with pytest.raises(RulesError) as e:
        rules_from_dict(data, source=source)
    return e.value


def test_shipped_rules_cover_every_industry_richly(rules):
    assert [r.code for r in rules.industries] == list(CODES)
    for r in rules.industries:
        assert len(r.keywords) >= 30, r.code


def test_unknown_industry_code_names_file_and_key(raw_rules):
    data = copy.deepcopy(raw_rules)
    data["industries"]["biomedical"] = {"keywords": {"药": 1}}
    err = dump_error(data)
    assert err.file == "rules/x.toml" and err.key == "industries.biomedical"
    assert "rules/x.toml" in str(err) and "未知的产业代码" in str(err) and "biomed" in str(err)


def test_non_number_weight_names_file_and_key(raw_rules):
    data = copy.deepcopy(raw_rules)
    data["industries"]["it"]["keywords"]["芯片"] = "高"
    err = dump_error(data)
    assert err.key == 'industries.it.keywords."芯片"'
    assert "权重应为数字" in str(err)
    data["industries"]["it"]["keywords"]["芯片"] = True
    assert dump_error(data).key == 'industries.it.keywords."芯片"'


def test_missing_settings_key_names_file_and_key(raw_rules):
    data = copy.deepcopy(raw_rules)
    del data["settings"]["threshold"]
    err = dump_error(data)
    assert err.key == "settings.threshold" and "缺少" in str(err)


def test_misspelt_settings_key_gets_a_suggestion(raw_rules):
    data = copy.deepcopy(raw_rules)
    data["settings"]["treshold"] = data["settings"].pop("threshold")
    err = dump_error(data)
    assert err.key == "settings.treshold" and "threshold" in str(err)


def test_missing_industry_and_duplicate_keyword(raw_rules):
    data = copy.deepcopy(raw_rules)
    del data["industries"]["hair"]
    assert dump_error(data).key == "industries.hair"
    data = copy.deepcopy(raw_rules)
    data["industries"]["it"]["keywords"]["ai"] = 1  # "AI" is there already
    err = dump_error(data)
    assert err.key == 'industries.it.keywords."ai"' and "重复" in str(err)


def test_file_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(RulesError) as e:
        load_rules(missing)
    assert str(missing) in str(e.value) and "不存在" in str(e.value)

    bad = write(tmp_path, '[settings]\ntitle_weight = 3\n"人工智能" 3\n')
    with pytest.raises(RulesError) as e:
        load_rules(bad)
    assert str(bad) in str(e.value) and "TOML" in str(e.value) and "line 3" in str(e.value)


def test_load_error_from_file_names_file_and_key(tmp_path):
    text = RULES_PATH.read_text(encoding="utf-8").replace('"芯片" = 3', '"芯片" = "三"')
    p = write(tmp_path, text)
    with pytest.raises(RulesError) as e:
        load_rules(p)
    assert str(e.value).startswith(f'{p}: industries.it.keywords."芯片": ')


def test_rules_error_is_a_value_error():
    assert issubclass(RulesError, ValueError)
