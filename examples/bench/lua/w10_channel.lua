-- W10: 100 producer coroutines each send 5 000 ints into one channel (capacity 100);
-- a consumer coroutine receives all 500 000 and sums them. Prints 124999750000.
-- Lua has no channels or scheduler: this is the smallest faithful one, a FIFO
-- run queue of coroutines and a bounded channel whose full `send` and empty
-- `recv` park the running coroutine until the other side wakes it.
local resume, yield, running = coroutine.resume, coroutine.yield, coroutine.running

-- A FIFO queue: items between `first` and `last`.
local function queue() return { first = 1, last = 0 } end
local function push(q, v)
  local last = q.last + 1
  q.last = last
  q[last] = v
end
local function pop(q)
  local first = q.first
  if first > q.last then return nil end
  local v = q[first]
  q[first] = nil
  q.first = first + 1
  return v
end

local ready = queue()

local function chan(capacity)
  return { buf = queue(), capacity = capacity, senders = queue(), receivers = queue() }
end

local function send(ch, v)
  local buf = ch.buf
  while buf.last - buf.first + 1 >= ch.capacity do
    push(ch.senders, running())
    yield()
  end
  push(buf, v)
  local r = pop(ch.receivers)
  if r then push(ready, r) end
end

local function recv(ch)
  local buf = ch.buf
  while buf.first > buf.last do
    push(ch.receivers, running())
    yield()
  end
  local v = pop(buf)
  local s = pop(ch.senders)
  if s then push(ready, s) end
  return v
end

local function spawn(f)
  push(ready, coroutine.create(f))
end

local function produce(ch, id, n)
  for i = 0, n - 1 do
    send(ch, id * n + i)
  end
end

local function main()
  local producers, n = 100, 5000
  local ch = chan(100)
  for id = 0, producers - 1 do
    spawn(function() produce(ch, id, n) end)
  end
  local sum = 0
  spawn(function()
    for _ = 1, producers * n do
      sum = sum + recv(ch)
    end
  end)
  while true do
    local co = pop(ready)
    if not co then break end
    local ok, err = resume(co)
    if not ok then error(err) end
  end
  print(sum)
end
main()
