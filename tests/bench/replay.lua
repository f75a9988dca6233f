-- wrk script of tests/bench: each wrk thread sends the pre-signed raw HTTP requests of
-- its own file (BENCH_REQ_PREFIX .. thread number, written by gen_requests.py as
-- 8-digit length + raw request), each once. When a file runs out the thread either
-- starts over (BENCH_WRAP=1, for nginx, which ignores bodies) or sends GETs to
-- /__bench_exhausted__ that are counted, so the harness can refuse the run.
-- Counts answers per status and appends the event_id of every 202 to
-- BENCH_IDS_PREFIX .. thread number, so the harness can check each 202 against the
-- database. done() prints "BENCH <name> <value>" lines for the harness to parse.

local threads = {}
local nthreads = 0

function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
  table.insert(threads, thread)
end

local f, idf, wrap
local exhausted_req = "GET /__bench_exhausted__ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

function init(args)
  f = assert(io.open(os.getenv("BENCH_REQ_PREFIX") .. tid, "rb"))
  local ids = os.getenv("BENCH_IDS_PREFIX")
  if ids and ids ~= "" then
    idf = assert(io.open(ids .. tid, "w"))
    idf:setvbuf("full", 65536)
  end
  wrap = os.getenv("BENCH_WRAP") == "1"
  sent, exhausted, c202, c200, c503, cother = 0, 0, 0, 0, 0, 0
end

function request()
  local hdr = f:read(8)
  if not hdr and wrap then
    f:seek("set", 0)
    hdr = f:read(8)
  end
  if not hdr then
    exhausted = exhausted + 1
    return exhausted_req
  end
  sent = sent + 1
  return f:read(tonumber(hdr))
end

function response(status, headers, body)
  if status == 202 then
    c202 = c202 + 1
    if idf then
      local id = string.match(body, '"event_id"%s*:%s*"?(%d+)')
      if id then idf:write(id, "\n") end
    end
  elseif status == 200 then
    c200 = c200 + 1
  elseif status == 503 then
    c503 = c503 + 1
  else
    cother = cother + 1
  end
  -- Flush now and then: wrk ends threads without a hook, so ids left in the buffer
  -- would be lost (the harness then sees fewer ids than 202s and says so).
  if idf and c202 % 32 == 0 then idf:flush() end
end

function done(summary, latency, requests)
  local tot = {sent = 0, exhausted = 0, c202 = 0, c200 = 0, c503 = 0, cother = 0}
  for _, t in ipairs(threads) do
    for k, _ in pairs(tot) do
      tot[k] = tot[k] + (tonumber(t:get(k)) or 0)
    end
  end
  for k, v in pairs(tot) do
    io.write(string.format("BENCH %s %d\n", k, v))
  end
  io.write(string.format("BENCH p50_us %d\n", latency:percentile(50)))
  io.write(string.format("BENCH p99_us %d\n", latency:percentile(99)))
  io.write(string.format("BENCH completed %d\n", summary.requests))
  io.write(string.format("BENCH duration_us %d\n", summary.duration))
end
