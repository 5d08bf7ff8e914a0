-- wrk script for the SAML ACS benchmark (bench/saml_bench.py): each of the pre-built form bodies
-- in the file named by the first argument is POSTed once; thread k of N (second argument) takes
-- lines k, k+N, k+2N … Counts 303 answers (validated) and everything else (failed); a thread that
-- runs out of bodies stops and says so, and done() prints one summary line.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"

local threads, next_id = {}, 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local bodies, i = {}, 0
validated, failed, exhausted = 0, 0, 0
function init(args)
  local n, k = tonumber(args[2]), 0
  for line in io.lines(args[1]) do
    if k % n == id then bodies[#bodies + 1] = line end
    k = k + 1
  end
end

function request()
  i = i + 1
  if i > #bodies then
    exhausted = 1
    wrk.thread:stop()
    return wrk.format("GET", "/health")
  end
  return wrk.format(nil, nil, nil, bodies[i])
end

function response(status, headers, body)
  if status == 303 then validated = validated + 1 else failed = failed + 1 end
end

function done(summary, latency, requests)
  local v, f, e = 0, 0, 0
  for _, t in ipairs(threads) do
    v = v + t:get("validated")
    f = f + t:get("failed")
    e = e + t:get("exhausted")
  end
  -- A stopped thread's last GET /health is not a failure: it is the exhausted flag.
  if e > 0 then f = 0 end
  io.write(string.format("ACS validated=%d failed=%d exhausted=%d p99_us=%.1f seconds=%.3f\n",
    v, f, e, latency:percentile(99), summary.duration / 1e6))
  io.write(string.format("ACS latency_us p50=%.0f p90=%.0f p99=%.0f p99.9=%.0f max=%.0f mean=%.0f\n",
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean))
end
