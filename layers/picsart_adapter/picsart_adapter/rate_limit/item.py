"""`LimiterItem`: the limiter's DynamoDB item as one execution environment reaches it: the consistent read, the
conditional write (timed, its units counted) and what a throttle on the item means (`hot_item`).

What the item holds is in `state`; the writes, as conditional updates, in `updates`; what an environment makes of
what it reads and writes, in `limiter`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from picsart_adapter.conditional_write import Written, update_item, write_units_of
from picsart_adapter.rate_limit.hot_item import THROTTLED, answer_write_skipped, is_throttle, throttled_denial
from picsart_adapter.rate_limit.state import ASSUMED_WRITE_MS, Denial, LimiterState, key_fingerprint

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

    from picsart_adapter.rate_limit.updates import ConditionalUpdate


class LimiterItem:
    """One API key's limiter item, as one execution environment reads and writes it."""

    def __init__(self, table: Table, api_key: Callable[[], str], clock: Callable[[], float] = time.time) -> None:
        self._table = table
        self._api_key = api_key
        self._clock = clock
        self._fingerprint: tuple[str, str] | None = None
        #: How long this environment's last write to the item took (ms): how late a grant comes back.
        self.write_ms = float(ASSUMED_WRITE_MS)
        #: Until when (epoch s) this environment leaves the item alone: DynamoDB throttled it (hot_item.py).
        self._throttled_until = 0.0
        #: DynamoDB write units this environment consumed (failed conditional writes are charged too).
        self.write_units = 0.0
        self.writes = 0

    @property
    def key(self) -> dict[str, str]:
        key = self._api_key()
        if self._fingerprint is None or self._fingerprint[0] != key:
            self._fingerprint = (key, key_fingerprint(key))
        return {"pk": f"ratelimit#{self._fingerprint[1]}", "sk": "state"}

    def read(self) -> LimiterState | None:
        """The item as it is now (a consistent read)."""
        item = self._table.get_item(Key=self.key, ConsistentRead=True).get("Item")
        return LimiterState.from_item(item) if item else None

    def write(self, update: ConditionalUpdate) -> Written:
        """One conditional write, timed (`write_ms`) and its units counted: DynamoDB charges a failed
        conditional write like a write."""
        self.writes += 1
        started = self._clock()
        try:
            written = update_item(
                self._table,
                self.key,
                update.update,
                update.condition,
                update.names,
                update.values,
                returned="ALL_NEW",
            )
        except ClientError as error:
            if not is_throttle(error):  # a throttled write's time is the SDK's retries, not a write's
                self.write_ms = (self._clock() - started) * 1000
            raise
        self.write_ms = (self._clock() - started) * 1000
        self.write_units += write_units_of(written.item or {})
        return written

    # -- DynamoDB throttled the item (hot_item.py) -----------------------------------------------------
    def throttled(self, error: ClientError, during: str) -> Denial:
        """DynamoDB throttled the item (after the SDK's retries): no call now, and this environment leaves the
        item alone until the denial's time. Any other error is raised."""
        if not is_throttle(error):
            raise error
        denial = throttled_denial(self._clock(), during)
        self._throttled_until = denial.retry_at
        return denial

    def left_alone(self) -> Denial | None:
        """The refusal while this environment leaves the throttled item alone (no read, no write); None once it
        may touch the item again (test_an_environment_that_found_the_item_throttled_leaves_it_alone_for_a_while)."""
        return Denial(self._throttled_until, THROTTLED) if self._throttled_until > self._clock() else None

    def write_unless_throttled(self, update: ConditionalUpdate) -> Written | None:
        """A write recording what an answer (or the balance check) said. Throttled, it is skipped (None): the call
        is paid for and its job goes on (test_a_throttled_answer_write_is_skipped_not_failed). Any other error is
        raised."""
        try:
            return self.write(update)
        except ClientError as error:
            if not is_throttle(error):
                raise
            answer_write_skipped()
            return None
