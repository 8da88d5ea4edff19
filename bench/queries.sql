-- Dashboard-style queries, run unchanged by Sonde (DataFusion) and DuckDB,
-- except `{p99}`: approx_percentile_cont(latency, 0.99) in DataFusion,
-- approx_quantile(latency, 0.99) in DuckDB (both approximate, t-digest).
-- The window is the last 15 minutes of the synthetic hour.
-- name: endpoint_p99_window
SELECT req_path, count(*) AS requests, {p99} AS p99
FROM http_events
WHERE time_ >= TIMESTAMP '2026-11-21 00:45:00' AND time_ < TIMESTAMP '2026-11-21 01:00:00'
GROUP BY req_path ORDER BY p99 DESC LIMIT 20
-- name: top_slow_requests
SELECT time_, comm, req_method, req_path, resp_status, latency
FROM http_events
WHERE time_ >= TIMESTAMP '2026-11-21 00:45:00' AND time_ < TIMESTAMP '2026-11-21 01:00:00'
ORDER BY latency DESC LIMIT 20
-- name: count_by_status
SELECT resp_status, count(*) AS requests
FROM http_events GROUP BY resp_status ORDER BY resp_status
-- name: endpoint_p99_all
SELECT req_path, count(*) AS requests, {p99} AS p99
FROM http_events GROUP BY req_path ORDER BY p99 DESC LIMIT 20
