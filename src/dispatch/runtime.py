"""What a command needs: the settings and a database, opened once and migrated."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from dispatch.config import Config
from dispatch.db.session import make_engine, migrate, session_factory

if TYPE_CHECKING:
    from dispatch.tagging.rules import Rules


@dataclass
class Runtime:
    config: Config

    @cached_property
    def engine(self) -> Engine:
        engine = make_engine(
            self.config.database_url, busy_timeout=self.config.database.busy_timeout_seconds
        )
        # Migrating on open keeps `pip install -U` + restart a one-step upgrade.
        try:
            migrate(engine)
        except BaseException:
            engine.dispose()  # not cached: the next try makes a new one
            raise
        return engine

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return session_factory(self.engine)

    @cached_property
    def signing_key(self) -> bytes:
        """Signs reader pages' forms (dispatch.track.signing)."""
        from dispatch.track.signing import load_key

        return load_key(self.sessions, self.config.secrets.secret_key)

    @cached_property
    def rules(self) -> Rules:
        from dispatch.tagging.rules import load_rules

        return load_rules(self.config.path(self.config.tagging.rules))
