-- wrk script of tests/bench/burst.py: a burst of Personio deliveries of a type no
-- handler takes (document.created). Every request has its own body and person id
-- (so its own dedup key and its own job); BENCH_TOKEN is the webhook token. Each
-- thread sends BENCH_PER_THREAD requests, then stops. done() prints
-- "BENCH <name> <value>" lines for the harness.

local threads = {}
local nthreads = 0

function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
  table.insert(threads, thread)
end

local token, per_thread, path

function init(args)
  token = os.getenv("BENCH_TOKEN")
  per_thread = tonumber(os.getenv("BENCH_PER_THREAD"))
  path = os.getenv("BENCH_PATH")
  sent, c202, c200, c503, cother = 0, 0, 0, 0, 0
  nextid = 0
end

-- A delivery that was not stored (503: intake saturated) is sent again under a new
-- id. While the last ones are in flight the thread waits (delay(), then a GET the
-- listener answers 404); a request wrk lost with its connection (no answer for 5 s)
-- is given up and replaced, so every thread ends with BENCH_PER_THREAD 202s.
local last_answer = 0

function delay()
  if c202 + (sent - (c202 + c200 + c503 + cother)) >= per_thread then
    return 20
  end
  return 0
end

function request()
  local answered = c202 + c200 + c503 + cother
  local now = os.time()
  if last_answer == 0 then last_answer = now end
  if sent > answered and now - last_answer >= 5 then
    sent = answered
  end
  if c202 + (sent - answered) >= per_thread then
    return "GET /__burst_filler__ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
  end
  sent = sent + 1
  nextid = nextid + 1
  local pid = tid * 10000000 + nextid
  local body = string.format(
    '{"company_id":1,"event_name":"document.created","occurred_at":"2026-12-03T10:00:00Z",' ..
    '"payload":{"person":{"id":%d},"document":{"id":"doc-%d-%d","title":"contract"}},' ..
    '"meta":{"bench":"burst"}}', pid, tid, nextid)
  return wrk.format("POST", path, {["Authorization"] = token,
                                   ["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  if status == 404 then
    return -- a filler
  end
  last_answer = os.time()
  if status == 202 then
    c202 = c202 + 1
  elseif status == 200 then
    c200 = c200 + 1
  elseif status == 503 then
    c503 = c503 + 1
  else
    cother = cother + 1
  end
  if c202 >= per_thread then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local tot = {sent = 0, c202 = 0, c200 = 0, c503 = 0, cother = 0}
  for _, t in ipairs(threads) do
    for k, _ in pairs(tot) do
      tot[k] = tot[k] + (tonumber(t:get(k)) or 0)
    end
  end
  for k, v in pairs(tot) do
    io.write(string.format("BENCH %s %d\n", k, v))
  end
  io.write(string.format("BENCH completed %d\n", summary.requests))
  io.write(string.format("BENCH duration_us %d\n", summary.duration))
end
