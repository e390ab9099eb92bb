"""A dbt data test as sqlorch runs it from its compiled SQL, with dbt's outcome rules."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DataTest:
    """A dbt data test, compiled, with what decides its outcome (dbt's test materialization).

    Run from its compiled SQL by native execution and by the direct window writes alike.
    """

    unique_id: str
    sql: str
    fail_calc: str = "count(*)"
    warn_if: str = "!= 0"
    error_if: str = "!= 0"
    severity: str = "ERROR"
    limit: int | None = None
    # store_failures: (database, schema, identifier, "table" | "view") of the failures relation
    store: tuple[str | None, str, str, str] | None = None

    def limited(self) -> str:
        """The test's SQL with its `limit` (dbt's `get_limit_subquery_sql`)."""
        main = self.sql.strip().rstrip(";")
        if self.limit is None:
            return main
        return (
            f"select *\n    from (\n        {main}\n    ) _dbt_limit_subq\n    limit {self.limit}"
        )

    def query(self, main: str | None = None) -> str:
        """dbt's `get_test_sql` around `main` (default: the limited test): failures, warn, error."""
        main = self.limited() if main is None else main
        fc = self.fail_calc
        return (
            f"select\n      {fc} as failures,\n      {fc} {self.warn_if} as should_warn,\n"
            f"      {fc} {self.error_if} as should_error\n    from (\n      {main}\n    "
            ") dbt_internal_test"
        )

    def outcome(self, failures: int, should_warn: bool, should_error: bool) -> tuple[str, str]:
        """(status, message) as dbt reports them for this result."""
        n = f"{failures} result{'' if failures == 1 else 's'}"
        if self.severity.upper() == "ERROR" and should_error:
            return "fail", f"Got {n}, configured to fail if {self.error_if}"
        if should_warn:
            return "warn", f"Got {n}, configured to warn if {self.warn_if}"
        return "pass", ""
