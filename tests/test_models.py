"""The data model on both databases: what later stages rely on."""

from __future__ import annotations

import pytest
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

from dispatch.db.models import (
    Article,
    ArticleTag,
    Delivery,
    Feedback,
    Issue,
    Reader,
    ReaderChannel,
    ReaderIndustry,
    Section,
)
from dispatch.db.session import (
    alembic_config,
    current_revision,
    head_revision,
    make_engine,
    migrate,
)


def _issue_with_article(session) -> tuple[Issue, Article]:
    issue = Issue(title="许昌竞争情报快递", source_file="x.txt", source_format="text")
    section = Section(position=0, title="行业动态")
    article = Article(
        position=0, title="标题", blocks=[{"kind": "paragraph", "text": "正文。"}]
    )
    section.articles.append(article)
    issue.sections.append(section)
    session.add(issue)
    session.flush()
    return issue, article


def test_schema_is_at_head_and_migrating_again_does_nothing(db_url):
    engine = make_engine(db_url)
    migrate(engine)
    assert current_revision(engine) == head_revision()
    assert migrate(engine) is False
    # The quick answers agree with Alembic's own, which they stand in for.
    with engine.connect() as conn:
        assert current_revision(engine) == MigrationContext.configure(conn).get_current_revision()
    assert head_revision() == ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_url):
    engine = make_engine(sqlite_url)
    migrate(engine)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_editor_tags_live_beside_automatic_ones(sessions):
    with sessions.begin() as s:
        _, article = _issue_with_article(s)
        article.tags = [
            ArticleTag(industry="it", origin="auto", score=9.0),
            ArticleTag(industry="biomed", origin="editor"),
        ]
    with sessions() as s:
        a = s.scalars(select(Article)).one()
        assert a.overridden
        assert a.industries == ["biomed"]
        assert a.tag_codes("auto") == ["it"]


def test_one_delivery_per_issue_reader_channel(sessions):
    with sessions.begin() as s:
        issue, _ = _issue_with_article(s)
        reader = Reader(name="张三", email="zhang@example.gov.cn")
        s.add(reader)
        s.flush()
        ids = (issue.id, reader.id)
    with sessions.begin() as s:
        s.add(Delivery(issue_id=ids[0], reader_id=ids[1], channel="email", token="a" * 26))
    with pytest.raises(IntegrityError), sessions.begin() as s:
        s.add(Delivery(issue_id=ids[0], reader_id=ids[1], channel="email", token="b" * 26))
    with sessions.begin() as s:
        # The other channel is another delivery.
        s.add(Delivery(issue_id=ids[0], reader_id=ids[1], channel="wecom", token="c" * 26))
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Delivery)) == 2


def test_one_vote_per_delivery_and_article_or_whole_issue(sessions):
    """What feedback.votes.set_vote relies on when two first votes race: the database
    keeps one per delivery and article, and one per delivery on the whole issue."""
    with sessions.begin() as s:
        issue, article = _issue_with_article(s)
        reader = Reader(name="张三", wecom_userid="zhangsan")
        s.add(reader)
        s.flush()
        delivery = Delivery(issue_id=issue.id, reader_id=reader.id, channel="wecom", token="d" * 32)
        s.add(delivery)
        s.flush()
        ids = (issue.id, reader.id, delivery.id, article.id)

    def vote(article_id: int | None, kind: str = "useful") -> Feedback:
        return Feedback(issue_id=ids[0], reader_id=ids[1], delivery_id=ids[2],
                        article_id=article_id, channel="wecom", kind=kind)

    with sessions.begin() as s:
        s.add_all([vote(ids[3]), vote(None), vote(None, "reply"), vote(None, "reply")])
    for again in (vote(ids[3], "not_useful"), vote(None, "not_useful")):
        with pytest.raises(IntegrityError), sessions.begin() as s:
            s.add(again)


def test_planning_twice_plans_nothing_new(sessions):
    """The outbox insert later stages use: INSERT … ON CONFLICT DO NOTHING."""
    with sessions.begin() as s:
        issue, _ = _issue_with_article(s)
        for i in range(3):
            s.add(Reader(name=f"读者{i}", email=f"r{i}@example.com"))
        s.flush()
        issue_id = issue.id
    for _ in range(2):
        with sessions.begin() as s:
            readers = s.scalars(select(Reader.id)).all()
            dialect = s.bind.dialect.name
            if dialect == "postgresql":
                from sqlalchemy.dialects.postgresql import insert as dialect_insert
            else:
                from sqlalchemy.dialects.sqlite import insert as dialect_insert
            stmt = dialect_insert(Delivery).values(
                [
                    {"issue_id": issue_id, "reader_id": r, "channel": "email", "token": f"t{r}x{_}"}
                    for r in readers
                ]
            )
            s.execute(stmt.on_conflict_do_nothing(index_elements=["issue_id", "reader_id", "channel"]))
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Delivery)) == 3


def test_reader_addresses_are_unique(sessions):
    with sessions.begin() as s:
        s.add(Reader(name="甲", email="a@example.com", wecom_userid="jia"))
    with pytest.raises(IntegrityError), sessions.begin() as s:
        s.add(Reader(name="乙", email="a@example.com"))
    with pytest.raises(IntegrityError), sessions.begin() as s:
        s.add(Reader(name="丙", wecom_userid="jia"))


def test_reader_industries_and_channels(sessions):
    with sessions.begin() as s:
        r = Reader(name="李四", email="li@example.com", wecom_userid="lisi")
        r.industry_rows = [ReaderIndustry(industry="nev"), ReaderIndustry(industry="biomed")]
        r.channel_rows = [ReaderChannel(channel="wecom"), ReaderChannel(channel="email")]
        s.add(r)
    with sessions() as s:
        r = s.scalars(select(Reader)).one()
        assert r.industries == ["biomed", "nev"]
        assert r.channels == ["email", "wecom"]
        assert r.status == "active"


def test_bad_states_are_refused_by_the_database(sessions):
    with pytest.raises(IntegrityError), sessions.begin() as s:
        s.execute(insert(Reader).values(name="x", status="deleted", organization="", position="",
                                        group_name="", follows_all=False,
                                        created_at=func.now(), updated_at=func.now()))


def test_deleting_an_issue_takes_its_content(sessions):
    with sessions.begin() as s:
        issue, _ = _issue_with_article(s)
        issue_id = issue.id
    with sessions.begin() as s:
        s.delete(s.get(Issue, issue_id))
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Article)) == 0


def test_issues_stored_before_the_content_hash_get_it_on_upgrade(dispatch):
    """Migration 0005 backfills with the rule ingest uses: a file ingested before the
    upgrade is still recognised after it."""
    from alembic import command
    from conftest import SAMPLE_ISSUE

    from dispatch.db.session import alembic_config

    dispatch.ok("issues", "ingest", str(SAMPLE_ISSUE))
    engine = make_engine(dispatch.db_url)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT content_hash FROM issues")).scalar_one()
    assert len(stored) == 64
    command.downgrade(alembic_config(engine), "0004")
    with engine.connect() as conn:
        assert "content_hash" not in {c["name"] for c in inspect(conn).get_columns("issues")}
    assert migrate(engine) is True
    with engine.connect() as conn:
        assert conn.execute(text("SELECT content_hash FROM issues")).scalar_one() == stored
    engine.dispose()
    r = dispatch("issues", "ingest", str(SAMPLE_ISSUE))
    assert r.exit_code == 1 and "--again" in r.stderr


def test_the_migrations_build_what_the_models_describe(db_url):
    """An Alembic comparison of the migrated database with the models finds nothing
    missing or extra (tables, columns, indexes, types)."""
    from alembic.autogenerate import compare_metadata

    from dispatch.db.models import Base

    engine = make_engine(db_url)
    migrate(engine)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def test_readers_keep_their_industries_and_channels_through_0007_and_back(dispatch):
    """0007 adds columns to readers and deliveries in place: on SQLite a copied table
    would cascade deletes to the readers' industries and channels."""
    from alembic import command
    from conftest import SAMPLE_READERS

    dispatch.ok("recipients", "import", str(SAMPLE_READERS))
    engine = make_engine(dispatch.db_url)

    def counts() -> tuple[int, int, int]:
        with engine.connect() as conn:
            return tuple(
                conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                for t in ("readers", "reader_industries", "reader_channels")
            )

    before = counts()
    assert before[1] > 0 and before[2] > 0
    command.downgrade(alembic_config(engine), "0006")
    assert counts() == before
    assert migrate(engine) is True
    assert counts() == before
    with engine.connect() as conn:
        assert conn.execute(text("SELECT max(email_bounces) FROM readers")).scalar_one() == 0
    engine.dispose()
