-- POST /api/v1/orders with a fresh Idempotency-Key per request, for wrk -s.
-- Arguments after "--": product id, API token, key prefix (unique per run).
local threads = {}

function setup(thread)
  thread:set("thread_number", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  product_id, token, prefix = args[1], args[2], args[3]
  sent = 0
  body = '{"items": [{"product_id": ' .. product_id .. ', "quantity": 1}]}'
end

function request()
  sent = sent + 1
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Token " .. token,
    ["Idempotency-Key"] = prefix .. "-" .. thread_number .. "-" .. sent,
  }
  return wrk.format("POST", "/api/v1/orders", headers, body)
end
