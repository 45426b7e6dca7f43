-- wrk script used by bench/reliability.sh: plain keep-alive load (wrk's own
-- static GET, one request in flight per connection), and a done() hook that
-- prints what the run lost as one machine-readable line:
--
--   RELIABILITY_RESULT {"requests":...,"duration_us":...,"errors":{"connect":...,...}}
--
-- The script defines no request() or response() hook, so wrk's request path is
-- exactly that of `wrk` without a script. What the counters mean (wrk 4.1):
--
--   requests  responses received and parsed, whatever their status
--   connect   connections that could not be established (refused, reset during connect)
--   read      a connection that failed while a request was outstanding: read
--             error (ECONNRESET) or end of stream before a complete response;
--             the request in flight on it is lost, wrk opens a new connection
--   write     a write that failed (EPIPE, ECONNRESET): the request was not sent
--   timeout   wrk checks every 2 s for connections whose request has waited
--             longer than --timeout and counts each one it finds (a request
--             that waits through several checks counts several times)
--   status    responses with a status outside 200-399 (counted in requests too)
--
-- bench/reliability.sh counts a failed request for each of them.

done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'RELIABILITY_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"max_latency_us":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d}}\n',
    summary.requests, summary.duration, summary.bytes, math.floor(latency.max + 0.5),
    errors.connect, errors.read, errors.write, errors.timeout, errors.status))
end
