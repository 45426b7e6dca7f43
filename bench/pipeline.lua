-- wrk script used by bench/http.sh for both HTTP figures.
--
--   wrk -t1 -c64 -d5s -s bench/pipeline.lua http://127.0.0.1:PORT/ -- 16   pipelined: 16 GETs per write
--   wrk -t1 -c64 -d5s -s bench/pipeline.lua http://127.0.0.1:PORT/ -- 1    plain keep-alive
--
-- With depth 1 the script removes its request() function, so wrk sends its
-- prebuilt static request exactly as `wrk` without a script does; the script is
-- then only there for done(), which prints one machine-readable line:
--
--   BENCH_RESULT {"requests":...,"duration_us":...,"p50_us":...,...}
--
-- (done() runs in wrk's main Lua state, where init() never ran, so the line
-- cannot say which depth was used: the caller knows.)
--
-- In pipelined mode wrk records one latency per batch: the time from writing the
-- 16 requests to reading the 16th response. The percentiles are wrk's own, as
-- `wrk --latency` prints them: after its coordinated-omission correction, which
-- adds synthetic samples and can leave a high percentile at 0 (reported as
-- missing by bench/lib.py).

local depth = 16
local batch

init = function(args)
  depth = tonumber(args[1] or "16")
  if depth == nil or depth < 1 or depth ~= math.floor(depth) then
    error("pipeline.lua: the argument after -- must be a whole number >= 1, got " .. tostring(args[1]))
  end
  if depth == 1 then
    request = nil  -- wrk checks for request() after init(): nil means its static request
    return
  end
  local requests = {}
  for i = 1, depth do
    requests[i] = wrk.format(nil)
  end
  batch = table.concat(requests)
end

request = function()
  return batch
end

done = function(summary, latency, requests)
  local errors = summary.errors
  local function us(value)
    return math.floor(value + 0.5)
  end
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    us(latency:percentile(50)), us(latency:percentile(90)), us(latency:percentile(99)), us(latency.max),
    errors.connect, errors.read, errors.write, errors.status, errors.timeout))
end
