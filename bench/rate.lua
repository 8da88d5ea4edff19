-- wrk rate limiter: each connection waits RATE_DELAY_MS after every response,
-- so the offered load is about connections * 1000 / RATE_DELAY_MS req/s
-- (a little lower: the response time adds to the wait). Closed loop, so
-- latency under overload is understated (no coordinated-omission correction).
local delay_ms = tonumber(os.getenv("RATE_DELAY_MS") or "1")
function delay()
  return delay_ms
end
