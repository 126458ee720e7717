"""Views stored in the catalog, so the plain duckdb CLI gets the same conveniences."""

from __future__ import annotations

VIEW_STATEMENTS: list[str] = [
    # Files present now (deleted ones keep their rows with deleted_at set).
    """CREATE OR REPLACE VIEW current_files AS
       SELECT * FROM files WHERE deleted_at IS NULL""",
    # The latest point of each metric: highest step, then latest timestamp (MLflow's rule).
    """CREATE OR REPLACE VIEW latest_metrics AS
       SELECT run_id, key,
              arg_max(value, (coalesce(step, -1), coalesce(timestamp, TIMESTAMPTZ '1970-01-01'))) AS value,
              max(step) AS step, max(timestamp) AS timestamp, count(*) AS points
       FROM metrics GROUP BY run_id, key""",
    # One row per run: its params and latest metric values as maps, ready to compare runs.
    """CREATE OR REPLACE VIEW run_summary AS
       SELECT r.run_id, r.source, r.experiment, r.name, r.status, r.start_time, r.end_time,
              r.git_commit, r.parent_run_id, r.root, r.dir,
              p.params, m.metrics
       FROM runs r
       LEFT JOIN (SELECT run_id, map(list(key ORDER BY key), list(value ORDER BY key)) AS params
                  FROM params GROUP BY run_id) p USING (run_id)
       LEFT JOIN (SELECT run_id, map(list(key ORDER BY key), list(value ORDER BY key)) AS metrics
                  FROM latest_metrics GROUP BY run_id) m USING (run_id)""",
]
