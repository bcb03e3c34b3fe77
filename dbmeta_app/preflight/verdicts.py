"""The guard's verdicts, remembered per profile (held by ``profiles.ProfileRuntime``)."""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from dbmeta_app.preflight.budget import Budget
from dbmeta_app.preflight.guard import GuardVerdict

_VERDICTS_MAX = 2048


class VerdictMemo:
    """The guard is pure: remember verdicts by (dialect, budget, sha256 of the SQL) so repeats skip parsing."""

    def __init__(self) -> None:
        self._items: OrderedDict[tuple[str, Budget, bytes], GuardVerdict] = OrderedDict()

    def get(
        self, dialect: str, budget: Budget, sql: str
    ) -> tuple[tuple[str, Budget, bytes], GuardVerdict | None]:
        key = (dialect, budget, hashlib.sha256(sql.encode("utf-8", "surrogatepass")).digest())
        verdict = self._items.get(key)
        if verdict is not None:
            self._items.move_to_end(key)
        return key, verdict

    def put(self, key: tuple[str, Budget, bytes], verdict: GuardVerdict) -> None:
        self._items[key] = verdict
        while len(self._items) > _VERDICTS_MAX:
            self._items.popitem(last=False)
