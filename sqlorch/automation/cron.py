"""Cron expressions in a time zone (cronsim: a 01:30 job fires once on a fall-back day)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlorch.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Cron:
    """A validated cron expression and the time zone its fields are read in."""

    expression: str
    timezone: str = "UTC"

    def zone(self) -> ZoneInfo:
        """The time zone."""
        return ZoneInfo(self.timezone)

    def after(self, moment: datetime) -> Iterator[datetime]:
        """Yield the tick times strictly after `moment`, in UTC."""
        from cronsim import CronSim

        local = moment.astimezone(self.zone()).replace(microsecond=0)
        for tick in CronSim(self.expression, local):
            yield tick.astimezone(UTC)

    def next_after(self, moment: datetime) -> datetime:
        """Return the first tick strictly after `moment` (UTC)."""
        return next(self.after(moment))

    def between(self, start: datetime, end: datetime, cap: int | None = None) -> list[datetime]:
        """Return the ticks in (start, end], oldest first (only the newest `cap` when capped)."""
        from cronsim import CronSim

        local = (end.astimezone(self.zone()) + timedelta(seconds=1)).replace(microsecond=0)
        out: list[datetime] = []
        for tick in CronSim(self.expression, local, reverse=True):
            at = tick.astimezone(UTC)
            if at <= start or (cap is not None and len(out) >= cap):
                break
            out.append(at)
        return out[::-1]

    def previous(self, moment: datetime) -> datetime:
        """Return the last tick at or before `moment` (UTC)."""
        from cronsim import CronSim

        local = (moment.astimezone(self.zone()) + timedelta(seconds=1)).replace(microsecond=0)
        return next(iter(CronSim(self.expression, local, reverse=True))).astimezone(UTC)

    def describe(self) -> str:
        """Return the expression with its zone, for messages."""
        return f"cron {self.expression!r} ({self.timezone})"


def parse_cron(expression: object, timezone: object, where: str) -> Cron:
    """Validate a cron expression and a time zone.

    Raises:
        ConfigError: the expression or the zone is not valid (`where` names the setting).
    """
    from cronsim import CronSim, CronSimError

    if not isinstance(expression, str) or not expression.strip():
        raise ConfigError(f'{where}: `cron` must be a cron expression such as "30 5 * * *".')
    tz = "UTC" if timezone is None else timezone
    if not isinstance(tz, str):
        raise ConfigError(f'{where}: `timezone` must be a name such as "Europe/Berlin".')
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f'{where}: unknown time zone {tz!r}. Use an IANA name such as "Europe/Berlin" or '
            '"America/New_York" (or "UTC").'
        ) from None
    try:
        CronSim(expression, datetime.now(UTC))
    except CronSimError as exc:
        raise ConfigError(
            f"{where}: {expression!r} is not a valid cron expression ({exc}). Five fields: "
            'minute hour day-of-month month day-of-week, e.g. "30 5 * * *" (05:30 daily).'
        ) from None
    return Cron(expression.strip(), tz)
