-- wrk script for tests/tools/soak.py: paced, unique, token-authenticated Personio
-- deliveries of type test.soak (noop jobs, so the workers drain them too). Each wrk
-- thread sends SOAK_RATE / threads requests a second, spread over its connections,
-- and never bursts to catch up after a stall. Bodies are unique (thread, counter, run)
-- so every one is a new event. The token comes from the environment, never argv.
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } rd_timespec;
  int clock_gettime(int clk, rd_timespec *ts);
]]
local ts = ffi.new("rd_timespec")
local function now()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
end

local threads = {}
local nthreads = 0

function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
  table.insert(threads, thread)
end

local interval, nxt, n, run, path, headers, pad

function init(args)
  local rate = tonumber(os.getenv("SOAK_RATE")) / nthreads_total()
  interval = 1.0 / rate
  nxt = now()
  n = 0
  run = os.getenv("SOAK_RUN")
  path = "/webhooks/" .. os.getenv("SOAK_CONNECTION") .. "/personio"
  headers = {["Authorization"] = os.getenv("SOAK_TOKEN"), ["Content-Type"] = "application/json"}
  pad = string.rep("p", 700)
  c202, c200, c503, cother = 0, 0, 0, 0
end

function nthreads_total()
  return tonumber(os.getenv("SOAK_THREADS"))
end

function delay()
  local t = now()
  if nxt < t then nxt = t end
  local d = nxt - t
  nxt = nxt + interval
  return math.floor(d * 1000)
end

function request()
  n = n + 1
  local body = string.format(
    '{"event_name":"test.soak","payload":{"id":"%s-%d-%d"},"meta":{"pad":"%s"}}',
    run, tid, n, pad)
  return wrk.format("POST", path, headers, body)
end

function response(status, headers, body)
  if status == 202 then c202 = c202 + 1
  elseif status == 200 then c200 = c200 + 1
  elseif status == 503 then c503 = c503 + 1
  else cother = cother + 1 end
end

function done(summary, latency, requests)
  local tot = {c202 = 0, c200 = 0, c503 = 0, cother = 0}
  for _, t in ipairs(threads) do
    for k, _ in pairs(tot) do tot[k] = tot[k] + (tonumber(t:get(k)) or 0) end
  end
  for k, v in pairs(tot) do io.write(string.format("SOAK %s %d\n", k, v)) end
  io.write(string.format("SOAK p50_us %d\n", latency:percentile(50)))
  io.write(string.format("SOAK p99_us %d\n", latency:percentile(99)))
  io.write(string.format("SOAK max_us %d\n", latency.max))
  io.write(string.format("SOAK completed %d\n", summary.requests))
  io.write(string.format("SOAK duration_us %d\n", summary.duration))
  io.write(string.format("SOAK errors %d\n", summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout + summary.errors.status))
end
