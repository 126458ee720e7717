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
    # DVC stages whose recorded state differs from the project now, with `dvc status`'s words:
    # a dependency or output whose md5 is not dvc.lock's (a folder's md5 is that of its `.dir`
    # listing, rebuilt here from the files' md5s as DVC builds it: JSON of {md5, relpath} sorted
    # by path parts), a missing one ("deleted"), a param or command that changed.  A stage never
    # run has every dependency "modified" and every missing output "deleted", as DVC reports it.
    # Files whose md5 the crawl did not compute are not judged.
    """CREATE OR REPLACE VIEW dvc_status AS
       WITH edges AS (
           SELECT root, relation, md5,
                  CASE WHEN relation = 'dvc_dep' THEN dst ELSE src END AS stage,
                  CASE WHEN relation = 'dvc_dep' THEN src ELSE dst END AS path,
                  coalesce(json_extract(facts, '$.locked')::BOOLEAN, true) AS locked
           FROM declared_edges
           WHERE crawler = 'dvc' AND relation IN ('dvc_dep', 'dvc_out')
             AND (relation = 'dvc_dep' AND dst_type = 'stage' OR relation = 'dvc_out' AND src_type = 'stage')),
       judged AS (
           SELECT e.*, f.md5 AS file_md5,
                  CASE WHEN e.md5 LIKE '%.dir' OR (f.path IS NULL AND e.md5 IS NULL) THEN (
                      SELECT md5('[' || string_agg('{"md5": "' || c.md5 || '", "relpath": "'
                                     || substr(c.path, length(e.path) + 2) || '"}', ', '
                                     ORDER BY string_split(substr(c.path, length(e.path) + 2), '/')) || ']')
                             || '.dir'
                      FROM files c WHERE c.root = e.root AND c.deleted_at IS NULL
                        AND starts_with(c.path, e.path || '/') AND c.md5 IS NOT NULL) END AS dir_md5,
                  EXISTS (SELECT 1 FROM files c WHERE c.root = e.root AND c.deleted_at IS NULL
                          AND (c.path = e.path OR starts_with(c.path, e.path || '/'))) AS present,
                  EXISTS (SELECT 1 FROM files c WHERE c.root = e.root AND c.deleted_at IS NULL
                          AND (c.path = e.path OR starts_with(c.path, e.path || '/')) AND c.md5 IS NULL) AS unhashed
           FROM edges e
           LEFT JOIN files f ON f.root = e.root AND f.path = e.path AND f.deleted_at IS NULL),
       files_changed AS (
           SELECT root, stage, CASE WHEN relation = 'dvc_dep' THEN 'changed deps' ELSE 'changed outs' END AS change,
                  path, CASE WHEN NOT present THEN 'deleted' ELSE 'modified' END AS state,
                  md5 AS recorded, coalesce(file_md5, dir_md5) AS current
           FROM judged
           WHERE NOT present
              OR (NOT unhashed AND (NOT locked OR md5 IS DISTINCT FROM coalesce(file_md5, dir_md5)))),
       runs_of AS (SELECT DISTINCT root, run_id, substr(run_id, 5) AS stage FROM runs WHERE source = 'dvc'),
       tagged AS (
           SELECT r.root, r.stage, 'changed deps' AS change, unnest(string_split(t.value, ', ')) AS path,
                  'modified' AS state, NULL AS recorded, NULL AS current
           FROM tags t JOIN runs_of r ON r.root = t.root AND r.run_id = t.run_id
           WHERE t.key = 'params_changed'
           UNION ALL
           SELECT r.root, r.stage, 'changed command', NULL, NULL, NULL, NULL
           FROM tags t JOIN runs_of r ON r.root = t.root AND r.run_id = t.run_id
           WHERE t.key = 'cmd_changed' AND t.value = 'true'),
       frozen AS (
           SELECT r.root, r.stage FROM tags t JOIN runs_of r ON r.root = t.root AND r.run_id = t.run_id
           WHERE t.key = 'frozen' AND lower(t.value) = 'true')
       SELECT DISTINCT c.* FROM (SELECT * FROM files_changed UNION ALL SELECT * FROM tagged) c
       WHERE NOT EXISTS (SELECT 1 FROM frozen z WHERE z.root = c.root AND z.stage = c.stage)""",
    # Outputs made from an input, code, param or command that is no longer what it was when
    # the output was made, and, transitively, every output made from a stale output (depth > 0,
    # `path` lists the nodes from the changed input to the output).  DVC stages are judged by
    # `dvc_status` (DVC's own meaning: md5s, params by value, the command); other makers by the
    # file version each edge recorded against the current content.
    """CREATE OR REPLACE VIEW stale AS
       WITH RECURSIVE makes AS (
           SELECT root, src_type AS maker_type, src AS maker, src_sha256 AS maker_sha256,
                  dst AS output, dst_sha256 AS output_sha256
           FROM lineage
           WHERE dst_type = 'file' AND relation IN ('wrote', 'produced', 'declared_output', 'logged_artifact', 'executed_as')),
       uses AS (
           SELECT DISTINCT root, src AS input, dst AS maker FROM lineage
           WHERE src_type = 'file' AND relation <> 'copy_of'),
       inputs AS (
           SELECT root, dst AS maker, src AS input, src_sha256 AS used_sha256, relation, evidence
           FROM lineage
           WHERE src_type = 'file' AND dst_type <> 'stage' AND src_sha256 IS NOT NULL AND relation <> 'copy_of'
           UNION ALL
           SELECT DISTINCT root, maker, maker, maker_sha256, 'code', 'the code itself'
           FROM makes WHERE maker_type = 'file' AND maker_sha256 IS NOT NULL),
       by_version AS (
           SELECT o.root, o.output, o.output_sha256, o.maker, i.input AS changed_input,
                  i.used_sha256, f.sha256 AS current_sha256, f.deleted_at IS NOT NULL AS input_deleted,
                  i.relation, i.evidence
           FROM makes o
           JOIN inputs i ON i.root = o.root AND i.maker = o.maker
           JOIN files f ON f.root = i.root AND f.path = i.input
           WHERE o.maker_type <> 'stage' AND (f.deleted_at IS NOT NULL OR f.sha256 IS DISTINCT FROM i.used_sha256)),
       by_dvc AS (
           SELECT s.root, CASE WHEN s.change = 'changed outs' THEN s.path ELSE o.output END AS output,
                  CASE WHEN s.change = 'changed outs' THEN NULL ELSE o.output_sha256 END AS output_sha256,
                  s.stage AS maker, coalesce(s.path, s.stage) AS changed_input,
                  NULL AS used_sha256, NULL AS current_sha256, coalesce(s.state = 'deleted', false) AS input_deleted,
                  s.change AS relation,
                  'dvc status: ' || s.change || coalesce(' ' || s.path || ' ' || s.state, '')
                      || coalesce(' (dvc.lock md5 ' || s.recorded || ', now ' || coalesce(s.current, 'none') || ')', '') AS evidence
           FROM dvc_status s
           LEFT JOIN makes o ON o.root = s.root AND o.maker = s.stage AND s.change <> 'changed outs'
           WHERE s.change = 'changed outs' OR o.output IS NOT NULL),
       chain(root, output, output_sha256, maker, changed_input, used_sha256, current_sha256, input_deleted,
             relation, evidence, depth, path) USING KEY (root, output, changed_input) AS (
           SELECT *, 0, CASE WHEN changed_input = output THEN [output] ELSE [changed_input, output] END FROM (SELECT * FROM by_version UNION ALL SELECT * FROM by_dvc)
           UNION ALL
           SELECT c.root, m.output, m.output_sha256, m.maker, c.changed_input, c.used_sha256, c.current_sha256,
                  c.input_deleted, c.relation, c.evidence, c.depth + 1, list_append(c.path, m.output)
           FROM chain c
           JOIN uses u ON u.root = c.root AND u.input = c.output
           JOIN makes m ON m.root = u.root AND m.maker = u.maker
           WHERE c.depth < 50 AND NOT list_contains(c.path, m.output)
             AND NOT EXISTS (SELECT 1 FROM recurring.chain r WHERE r.root = c.root AND r.output = m.output
                             AND r.changed_input = c.changed_input))
       SELECT root, output, output_sha256, maker, changed_input, used_sha256, current_sha256, input_deleted,
              relation, evidence, depth, path FROM chain""",
    # Problems that still stand: those of each current unit's latest reading (a failed unit is
    # not re-read while unchanged, so its error stays open), and the walk/hash problems of each
    # root's latest crawl.  One row per path, crawler and problem, with first and last seen.
    """CREATE OR REPLACE VIEW open_errors AS
       WITH latest AS (
           SELECT r.root, max(c.crawl_id) AS crawl_id FROM crawls c, unnest(c.roots) AS r(root)
           WHERE c.status <> 'running' GROUP BY 1),
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
    # Source runs that are one training, logged by several tools at once (Lightning's CSV +
    # TensorBoard + MLflow loggers, HF Trainer + W&B, Hydra + MLflow): one row per pair of runs
    # of different sources, with the evidence.  recorded_id: a param or tag of one run holds the
    # other's own id (8+ characters); same_folder: one run's folder is the other's or lies in
    # it (the nearest enclosing run of each other source, in a folder that is that run's alone,
    # not the crawl root), their times not disjoint;
    # equal_params: 2+ params with the same keys and values (any sources, two loggers of one
    # tool too), times overlapping, or where a time is unknown, folders at most 3 levels below
    # their common folder.
    """CREATE OR REPLACE VIEW run_links AS
       WITH r AS (SELECT * FROM runs QUALIFY row_number() OVER (PARTITION BY run_id ORDER BY crawl_id DESC, unit) = 1),
       ids AS (SELECT DISTINCT run_id, key, value FROM (
                   SELECT run_id, key, value FROM params UNION ALL SELECT run_id, key, value FROM tags)
               WHERE length(value) >= 8),
       -- A folder that is one run's own (a pipeline stage at the root or a folder of several
       -- notebooks' outputs is no training's folder).
       own_folders AS (SELECT root, source, dir FROM r WHERE dir IS NOT NULL GROUP BY ALL HAVING count(*) = 1),
       recorded AS (
           SELECT i.run_id AS a, o.run_id AS b, 'recorded_id' AS relation,
                  i.key || ' = ' || o.source || ' id ' || o.source_run_id AS detail
           FROM ids i JOIN r o ON o.source_run_id = i.value
           JOIN r s ON s.run_id = i.run_id AND s.source <> o.source),
       folder AS (
           SELECT a.run_id AS a, b.run_id AS b, 'same_folder' AS relation,
                  CASE WHEN a.dir = b.dir THEN 'both in ' || a.dir ELSE a.dir || ' is in ' || b.dir END AS detail
           FROM r a JOIN r b ON a.root = b.root AND a.source <> b.source
            AND (a.dir = b.dir OR starts_with(a.dir, b.dir || '/'))
           WHERE b.dir <> '.' AND (b.root, b.source, b.dir) IN (SELECT (root, source, dir) FROM own_folders)
             AND NOT coalesce(a.start_time > b.end_time + INTERVAL 1 MINUTE
                              OR b.start_time > a.end_time + INTERVAL 1 MINUTE, false)
           QUALIFY rank() OVER (PARTITION BY a.run_id, b.source ORDER BY length(b.dir) DESC) = 1),
       psets AS (
           SELECT run_id, md5(string_agg(key || '=' || coalesce(value, chr(0)), chr(1) ORDER BY key, value)) AS h,
                  count(*) AS n
           FROM (SELECT DISTINCT run_id, key, value FROM params) GROUP BY run_id HAVING count(*) >= 2),
       param_pairs AS (
           SELECT pa.run_id AS a, pb.run_id AS b, pa.n, ra.start_time AS sa, ra.end_time AS ea,
                  rb.start_time AS sb, rb.end_time AS eb, len(ra.parts) AS la, len(rb.parts) AS lb,
                  coalesce(nullif(list_position(list_transform(range(1, least(len(ra.parts), len(rb.parts)) + 1),
                                                               lambda i: ra.parts[i] = rb.parts[i]), false), 0) - 1,
                           least(len(ra.parts), len(rb.parts))) AS common
           FROM psets pa JOIN psets pb ON pa.h = pb.h AND pa.run_id < pb.run_id
           JOIN (SELECT *, string_split(dir, '/') AS parts FROM r) ra ON ra.run_id = pa.run_id
           JOIN (SELECT *, string_split(dir, '/') AS parts FROM r) rb ON rb.run_id = pb.run_id
           WHERE ra.root = rb.root AND ra.dir IS DISTINCT FROM rb.dir),
       same_params AS (
           SELECT a, b, 'equal_params' AS relation,
                  n || ' equal params, ' || CASE WHEN sa IS NOT NULL AND sb IS NOT NULL THEN 'times overlapping'
                                                ELSE 'folders close' END AS detail
           FROM param_pairs
           WHERE CASE WHEN sa IS NOT NULL AND sb IS NOT NULL
                      THEN sa <= coalesce(eb, sb) + INTERVAL 1 MINUTE AND sb <= coalesce(ea, sa) + INTERVAL 1 MINUTE
                      ELSE la - common <= 3 AND lb - common <= 3 END),
       found AS (SELECT * FROM recorded UNION ALL SELECT * FROM folder UNION ALL SELECT * FROM same_params)
       SELECT DISTINCT least(a, b) AS run_a, greatest(a, b) AS run_b, relation, detail FROM found WHERE a <> b""",
    # Every source run once, with the logical run it belongs to: the smallest run id of its
    # connected group in run_links (a run linked to nothing is its own logical run), the number
    # of source runs in the group, and the evidence that links this run to the others.
    """CREATE OR REPLACE VIEW logical_runs AS
       WITH RECURSIVE r AS (SELECT * FROM runs QUALIFY row_number() OVER (PARTITION BY run_id ORDER BY crawl_id DESC, unit) = 1),
       edges AS (SELECT run_a AS x, run_b AS y FROM run_links UNION SELECT run_b, run_a FROM run_links),
       reach(run_id, member) AS (
           SELECT run_id, run_id FROM r
           UNION
           SELECT reach.run_id, e.y FROM reach JOIN edges e ON e.x = reach.member),
       grouped AS (SELECT run_id, min(member) AS logical_run_id FROM reach GROUP BY run_id),
       evidence AS (
           SELECT run_id, list({'linked_run_id': other, 'relation': relation, 'detail': detail}
                               ORDER BY other, relation) AS evidence
           FROM (SELECT run_a AS run_id, run_b AS other, relation, detail FROM run_links
                 UNION ALL SELECT run_b, run_a, relation, detail FROM run_links)
           GROUP BY run_id)
       SELECT g.logical_run_id, r.run_id, r.source, r.source_run_id, r.experiment, r.name, r.status,
              r.start_time, r.end_time, r.root, r.dir,
              count(*) OVER (PARTITION BY g.logical_run_id) AS source_runs, e.evidence
       FROM r JOIN grouped g USING (run_id) LEFT JOIN evidence e USING (run_id)""",
]
