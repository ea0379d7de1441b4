-- Test harness: run a test body as a coroutine that yields to Neovim's main loop (so typed
-- keys, LSP messages and timers are processed), record named steps, write JSON, quit.
--
-- Environment: OPEN_LLM_TEST_OUT (results file), OPEN_LLM_TEST_CONFIG (JSON: cmd, settings,
-- workspace), OPEN_LLM_TEST_TIMEOUT_S (whole-run limit).
local T = {}

T.out = assert(os.getenv('OPEN_LLM_TEST_OUT'), 'OPEN_LLM_TEST_OUT is not set')
T.config = vim.json.decode(os.getenv('OPEN_LLM_TEST_CONFIG') or '{}')
T.results = { steps = {}, order = {}, notifications = {} }
local started = vim.uv.hrtime()

-- Record every notification (and keep them visible on stderr for debugging).
vim.notify = function(msg, level)
  table.insert(T.results.notifications, { msg = tostring(msg), level = level })
  io.stderr:write(('[notify %s] %s\n'):format(tostring(level), tostring(msg)))
end

local function elapsed()
  return (vim.uv.hrtime() - started) / 1e9
end

local finished = false
function T.finish()
  if finished then
    return
  end
  finished = true
  T.results.seconds = elapsed()
  local f = assert(io.open(T.out, 'w'))
  f:write(vim.json.encode(T.results))
  f:close()
  vim.schedule(function()
    vim.cmd('qall!')
  end)
end

local co

local function resume(...)
  local ok, err = coroutine.resume(co, ...)
  if not ok then
    T.results.fatal = tostring(err) .. '\n' .. debug.traceback(co)
    T.finish()
  elseif coroutine.status(co) == 'dead' then
    T.finish()
  end
end

--- Yield to the main loop for `ms` milliseconds.
function T.sleep(ms)
  local me = coroutine.running()
  vim.defer_fn(function()
    if me == co then
      resume()
    end
  end, ms)
  coroutine.yield()
end

--- Poll `cond` until it returns a truthy value (returned) or `timeout_ms` passes (nil).
function T.wait(timeout_ms, cond, interval)
  local deadline = vim.uv.now() + timeout_ms
  while true do
    local ok, value = pcall(cond)
    if ok and value then
      return value
    end
    if vim.uv.now() > deadline then
      return nil
    end
    T.sleep(interval or 50)
  end
end

--- Type keys (mappings apply) and let the main loop process them.
function T.feed(keys, ms)
  vim.api.nvim_feedkeys(vim.keycode(keys), 'm', false)
  T.sleep(ms or 100)
end

--- An LSP request to the open_llm server, waited for in the coroutine.
function T.request(method, params, timeout_ms)
  local client = assert(vim.lsp.get_clients({ name = 'open_llm' })[1], 'no open_llm client')
  local response
  if params == nil or (type(params) == 'table' and next(params) == nil) then
    params = vim.empty_dict()
  end
  client:request(method, params, function(err, result)
    response = { err = err, result = result }
  end)
  assert(
    T.wait(timeout_ms or 30000, function()
      return response
    end),
    method .. ': no response'
  )
  if response.err then
    error(method .. ': ' .. vim.inspect(response.err))
  end
  return response.result
end

--- Choices for the next vim.ui.select calls: each a function(items, labels) -> index.
T.choices = {}
T.selects = {}
vim.ui.select = function(items, opts, on_choice)
  local labels = {}
  for i, item in ipairs(items) do
    labels[i] = opts.format_item and opts.format_item(item) or tostring(item)
  end
  table.insert(T.selects, { prompt = opts.prompt, labels = labels })
  local choose = table.remove(T.choices, 1)
  local index = choose and choose(items, labels) or nil
  vim.schedule(function()
    on_choice(index and items[index] or nil, index)
  end)
end
T.inputs = {}
vim.ui.input = function(_, on_confirm)
  local value = table.remove(T.inputs, 1)
  vim.schedule(function()
    on_confirm(value)
  end)
end

--- Run one named step; errors fail the step, not the run. Returns the step's record.
function T.step(name, fn)
  local record = { ok = false }
  T.results.steps[name] = record
  table.insert(T.results.order, name)
  local t0 = elapsed()
  io.stderr:write(('[step] %s\n'):format(name))
  -- Start every step in normal mode, whatever the previous one left behind.
  if vim.api.nvim_get_mode().mode ~= 'n' then
    T.feed('<Esc>')
  end
  local ok, err = xpcall(fn, debug.traceback, record)
  record.ok = ok
  record.error = (not ok) and tostring(err) or nil
  record.seconds = elapsed() - t0
  if not ok then
    io.stderr:write(('[step] %s FAILED: %s\n'):format(name, tostring(err)))
  end
  return record
end

--- Start the test body (after startup), with a whole-run time limit.
function T.run(body)
  local limit = tonumber(os.getenv('OPEN_LLM_TEST_TIMEOUT_S') or '170')
  vim.defer_fn(function()
    T.results.timeout = true
    T.finish()
  end, limit * 1000)
  co = coroutine.create(body)
  vim.schedule(resume)
end

function T.lines(bufnr)
  return vim.api.nvim_buf_get_lines(bufnr or 0, 0, -1, false)
end

return T
