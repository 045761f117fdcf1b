-- wrk script of crm-bench: `wrk ... -s bench.lua URL -- MODE FILE PER TAG COUNT`.
--
-- MODE says what each request is:
--   static   wrk's own request (GET of URL), no Lua per request;
--   lines    a random line of FILE, `METHOD<TAB>PATH<TAB>BODY`, formatted once at start;
--   create   POST /api/create_customer, a new e-mail each time (TAG keeps runs apart);
--   credit   POST /api/credit, PER items of random cards of FILE (a `Tickets` array:
--            `{}` would be the scheduler's pull);
--   tickets  POST /api/v1/tickets, PER tickets of 3 articles, new ids, random
--            customers (IdClient) of FILE;
--   allow    POST /api/allow_credit for a random IdClient of FILE;
--   mix      create, credit, allow in turn (FILE: lines `IdClient<TAB>card`).
-- COUNT = `count` counts the answers by status (slower: wrk hands each answer to Lua).
-- done() prints one line, `WRKJSON {...}`, that the harness reads.

local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

local json_headers = { ["Content-Type"] = "application/json" }
local mode, per, tag = "static", 1, "run"
local reqs, keys, cards = {}, {}, {}
local counter = 0
statuses = {}

local function read_lines(file)
  local out = {}
  for line in io.lines(file) do
    if #line > 0 then out[#out + 1] = line end
  end
  return out
end

local function pick(list)
  return list[math.random(#list)]
end

local function next_id()
  counter = counter + 1
  return tid * 1000000000 + counter
end

local function create_body()
  return string.format('{"Nom":"Bench","Prenom":"Writer","email":"%s-%d@bench.example"}', tag, next_id())
end

local function credit_body()
  local items = {}
  for i = 1, per do
    items[i] = string.format('{"carteFid":%s,"Montant":26}', pick(cards))
  end
  return '{"Tickets":[' .. table.concat(items, ",") .. "]}"
end

local function allow_body()
  return string.format('{"idClient":"%s","Montant":100,"Date":"2031-01-15"}', pick(keys))
end

local function tickets_body()
  local items = {}
  for i = 1, per do
    local id = next_id()
    items[i] = string.format(
      '{"id":"%s%d","date":"2019-10-09T17:01:29.408701Z","prix":%d,"client":"%s","pointsFidelite":3,' ..
        '"modePaiement":"CARD","articles":[' ..
        '{"codeProduit":"X1-0","prixAvant":800,"prixApres":400,"promo":50,"quantity":2},' ..
        '{"codeProduit":"X1-9","prixAvant":48,"prixApres":24,"promo":50,"quantity":1},' ..
        '{"codeProduit":"X2-4","prixAvant":36,"prixApres":36,"promo":0,"quantity":3}]}',
      tag, id, 1234 + id % 1000, pick(keys))
  end
  return '{"origin":"magasin","tickets":[' .. table.concat(items, ",") .. "]}"
end

function init(args)
  mode = args[1] or "static"
  local file = args[2]
  per = tonumber(args[3] or "1") or 1
  tag = args[4] or "run"
  math.randomseed(tid * 7919 + os.time())
  if mode == "lines" then
    for _, line in ipairs(read_lines(file)) do
      local method, path, body = line:match("^(%S+)\t([^\t]*)\t?(.*)$")
      if body == "" then
        reqs[#reqs + 1] = wrk.format(method, path)
      else
        reqs[#reqs + 1] = wrk.format(method, path, json_headers, body)
      end
    end
    request = function() return reqs[math.random(#reqs)] end
  elseif mode == "create" then
    request = function() return wrk.format("POST", "/api/create_customer", json_headers, create_body()) end
  elseif mode == "credit" then
    cards = read_lines(file)
    request = function() return wrk.format("POST", "/api/credit", json_headers, credit_body()) end
  elseif mode == "tickets" then
    keys = read_lines(file)
    request = function() return wrk.format("POST", "/api/v1/tickets", json_headers, tickets_body()) end
  elseif mode == "allow" then
    keys = read_lines(file)
    request = function() return wrk.format("POST", "/api/allow_credit", json_headers, allow_body()) end
  elseif mode == "mix" then
    for _, line in ipairs(read_lines(file)) do
      local key, card = line:match("^(%S+)\t(%S+)$")
      keys[#keys + 1] = key
      cards[#cards + 1] = card
    end
    request = function()
      counter = counter + 1
      local turn = counter % 3
      if turn == 0 then
        return wrk.format("POST", "/api/create_customer", json_headers, create_body())
      elseif turn == 1 then
        return wrk.format("POST", "/api/credit", json_headers, credit_body())
      end
      return wrk.format("POST", "/api/allow_credit", json_headers, allow_body())
    end
  end
  if args[5] == "count" then
    response = function(status, headers, body)
      statuses[status] = (statuses[status] or 0) + 1
    end
  end
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    local counted = thread:get("statuses")
    if counted then
      for status, n in pairs(counted) do
        total[status] = (total[status] or 0) + n
      end
    end
  end
  local parts = {}
  for status, n in pairs(total) do
    parts[#parts + 1] = string.format('"%d":%d', status, n)
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,' ..
      '"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"statuses":{%s}}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    table.concat(parts, ",")))
end
