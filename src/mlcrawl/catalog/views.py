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
    # Several units may describe one run (two files of one folder): the newest row and the
    # newest value of each key win, since a map's keys must be unique.
    """CREATE OR REPLACE VIEW run_summary AS
       SELECT r.run_id, r.source, r.experiment, r.name, r.status, r.start_time, r.end_time,
              r.git_commit, r.parent_run_id, r.root, r.dir,
              p.params, m.metrics
       FROM (SELECT * FROM runs QUALIFY row_number() OVER (PARTITION BY run_id ORDER BY crawl_id DESC, unit) = 1) r
       LEFT JOIN (SELECT run_id, map(list(key ORDER BY key), list(value ORDER BY key)) AS params
                  FROM (SELECT run_id, key, arg_max(value, crawl_id) AS value FROM params GROUP BY run_id, key)
                  GROUP BY run_id) p USING (run_id)
       LEFT JOIN (SELECT run_id, map(list(key ORDER BY key), list(value ORDER BY key)) AS metrics
                  FROM latest_metrics GROUP BY run_id) m USING (run_id)""",
    # Lineage, walked backwards (what made this?) or forwards (what depends on this?), by path,
    # run id or stage: one row per node reached, at its shortest depth, with the edge that reached
    # it (via, relation, evidence), the product of confidences and the evidence chain back to the
    # start (chains := false skips the chains: on a graph of 100,000 nodes they are most of the cost).
    # Nodes are walked as the stored 64-bit keys; each step keeps one row per new node (GROUP BY)
    # and skips nodes already reached (recurring.reach), else fan-in grows the work exponentially.
    """CREATE OR REPLACE MACRO upstream(target, max_depth := 1000, chains := true) AS TABLE
       WITH RECURSIVE reach(node, depth, via) USING KEY (node) AS (
           SELECT DISTINCT dst_key, 0, NULL::UBIGINT FROM lineage WHERE dst = target
           UNION ALL
           SELECT l.src_key, min(w.depth) + 1, min(w.node)
           FROM reach w JOIN lineage l ON l.dst_key = w.node
           WHERE w.depth < max_depth AND NOT EXISTS (SELECT 1 FROM recurring.reach r WHERE r.node = l.src_key)
           GROUP BY l.src_key),
       step AS (
           SELECT r.node, r.depth, r.via, l.src AS name, l.src_type AS node_type, l.src_sha256 AS sha256,
                  l.relation, l.dst AS via_name, l.evidence, l.confidence
           FROM reach r JOIN lineage l ON l.src_key = r.node AND l.dst_key = r.via
           QUALIFY row_number() OVER (PARTITION BY r.node ORDER BY l.relation, l.evidence) = 1),
       chain(node, confidence, chain) USING KEY (node) AS (
           SELECT node, confidence, [evidence] FROM step WHERE depth = 1 AND chains
           UNION ALL
           SELECT s.node, c.confidence * s.confidence, list_append(c.chain, s.evidence)
           FROM chain c JOIN step s ON s.via = c.node)
       SELECT s.depth, s.node_type, s.name AS node, s.sha256, s.relation, s.via_name AS via, s.evidence,
              coalesce(c.confidence, s.confidence) AS confidence, c.chain
       FROM step s LEFT JOIN chain c USING (node) ORDER BY s.depth, s.name""",
    """CREATE OR REPLACE MACRO downstream(target, max_depth := 1000, chains := true) AS TABLE
       WITH RECURSIVE reach(node, depth, via) USING KEY (node) AS (
           SELECT DISTINCT src_key, 0, NULL::UBIGINT FROM lineage WHERE src = target
           UNION ALL
           SELECT l.dst_key, min(w.depth) + 1, min(w.node)
           FROM reach w JOIN lineage l ON l.src_key = w.node
           WHERE w.depth < max_depth AND NOT EXISTS (SELECT 1 FROM recurring.reach r WHERE r.node = l.dst_key)
           GROUP BY l.dst_key),
       step AS (
           SELECT r.node, r.depth, r.via, l.dst AS name, l.dst_type AS node_type, l.dst_sha256 AS sha256,
                  l.relation, l.src AS via_name, l.evidence, l.confidence
           FROM reach r JOIN lineage l ON l.dst_key = r.node AND l.src_key = r.via
           QUALIFY row_number() OVER (PARTITION BY r.node ORDER BY l.relation, l.evidence) = 1),
       chain(node, confidence, chain) USING KEY (node) AS (
           SELECT node, confidence, [evidence] FROM step WHERE depth = 1 AND chains
           UNION ALL
           SELECT s.node, c.confidence * s.confidence, list_append(c.chain, s.evidence)
           FROM chain c JOIN step s ON s.via = c.node)
       SELECT s.depth, s.node_type, s.name AS node, s.sha256, s.relation, s.via_name AS via, s.evidence,
              coalesce(c.confidence, s.confidence) AS confidence, c.chain
       FROM step s LEFT JOIN chain c USING (node) ORDER BY s.depth, s.name""",
    # Outputs made from an input version (or by a code version) that is no longer the current
    # content of that path: what `dvc status` says for declared stages, here for every edge.
    """CREATE OR REPLACE VIEW stale AS
       WITH outputs AS (
           SELECT root, src_type AS maker_type, src AS maker, src_sha256 AS maker_sha256,
                  dst AS output, dst_sha256 AS output_sha256
           FROM lineage
           WHERE dst_type = 'file' AND relation IN ('wrote', 'produced', 'declared_output', 'logged_artifact', 'executed_as')),
       inputs AS (
           SELECT root, dst AS maker, src AS input, src_sha256 AS used_sha256, relation, evidence
           FROM lineage
           WHERE src_type = 'file' AND src_sha256 IS NOT NULL AND relation <> 'copy_of'
           UNION ALL
           SELECT DISTINCT root, maker, maker, maker_sha256, 'code', 'the code itself'
           FROM outputs WHERE maker_type = 'file' AND maker_sha256 IS NOT NULL)
       SELECT DISTINCT o.root, o.output, o.output_sha256, o.maker, i.input AS changed_input,
              i.used_sha256, f.sha256 AS current_sha256, f.deleted_at IS NOT NULL AS input_deleted,
              i.relation, i.evidence
       FROM outputs o
       JOIN inputs i ON i.root = o.root AND i.maker = o.maker
       JOIN files f ON f.root = i.root AND f.path = i.input
       WHERE f.deleted_at IS NOT NULL OR f.sha256 IS DISTINCT FROM i.used_sha256""",
    # Problems that still stand: those of each current unit's latest reading (a failed unit is
    # not re-read while unchanged, so its error stays open), and the walk/hash problems of each
    # root's latest crawl.  One row per path, crawler and problem, with first and last seen.
    """CREATE OR REPLACE VIEW open_errors AS
       WITH latest AS (
           SELECT unnest(roots) AS root, max(crawl_id) AS crawl_id FROM crawls
           WHERE status <> 'running' GROUP BY 1),
       standing AS (
           SELECT e.* FROM errors e
           JOIN units u ON u.root = e.root AND u.crawler = e.crawler AND u.unit = e.unit
                       AND u.deleted_at IS NULL AND u.crawl_id = e.crawl_id
           UNION ALL
           SELECT e.* FROM errors e JOIN latest l ON l.root = e.root AND l.crawl_id = e.crawl_id
           WHERE e.unit = '' OR e.unit IS NULL)
       SELECT s.root, s.path, s.crawler, s.error_type, s.severity, arg_max(s.message, s.at) AS message,
              (SELECT min(e2.at) FROM errors e2 WHERE e2.root = s.root AND e2.path = s.path
                 AND e2.crawler = s.crawler AND e2.error_type = s.error_type) AS first_seen,
              max(s.at) AS last_seen
       FROM standing s GROUP BY s.root, s.path, s.crawler, s.error_type, s.severity""",
]
