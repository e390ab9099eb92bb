"""dbt's messages in the user's terms: seed rows counted from 1, source-file lines."""

from __future__ import annotations

from pathlib import Path

from sqlorch.dbt.diagnostics import in_user_terms


def test_a_seed_row_is_numbered_as_people_count_it() -> None:
    said = "Row 2 has 3 values, but Table only has 2 columns."
    assert in_user_terms(said, "seeds/colors.csv") == (
        "Row 3 (line 4 of seeds/colors.csv) has 3 values, but the header has only 2 columns."
    )


def test_a_line_of_the_sql_dbt_ran_names_the_line_of_the_model(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "bad.sql").write_text(
        "-- a comment\n{% set x = 1 %}\nselect *\nfrom {{ ref('a') }}\nwhere  no_such_column = 1\n"
    )
    said = 'Binder Error: column "no_such_column" not found LINE 9: where no_such_column = 1 ^^^'
    out = in_user_terms(said, "models/bad.sql", tmp_path)
    assert "LINE 9: where no_such_column = 1 (line 9 of the SQL dbt ran is line 5 of " in out
    # a text that is on no line, or on several, is left as dbt said it
    assert in_user_terms("LINE 3: select *", "models/missing.sql", tmp_path) == "LINE 3: select *"
    (tmp_path / "models" / "twice.sql").write_text("select 1\nunion all\nselect 1\n")
    assert in_user_terms("LINE 2: select 1", "models/twice.sql", tmp_path) == "LINE 2: select 1"
