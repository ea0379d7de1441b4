--- The server's state as last reported (openLlm/status, openLlm/statusChanged) and the
--- statusline text built from it.
local M = {}

---@type table<integer, table> last status per client id
M.by_client = {}
---@type table<integer, string> active preset id per client id (first workspace folder)
M.preset = {}
--- Streaming chat answers: request id -> generated pieces (for the statusline).
M.streaming = {}

local function redraw()
  vim.schedule(function()
    pcall(vim.cmd.redrawstatus, { bang = true })
  end)
end

--- Remember a status object from the server and refresh statuslines.
---@param client_id integer
---@param status table
function M.update(client_id, status)
  local previous = M.by_client[client_id]
  if previous and status.settingsProblems == nil then
    -- openLlm/statusChanged may leave out what only openLlm/status carries.
    status.settingsProblems = previous.settingsProblems
  end
  M.by_client[client_id] = status
  redraw()
  vim.api.nvim_exec_autocmds('User', {
    pattern = 'OpenLlmStatus',
    modeline = false,
    data = { client_id = client_id, status = status, previous = previous },
  })
end

---@param client_id integer
---@param preset_id string|nil
function M.set_preset(client_id, preset_id)
  M.preset[client_id] = preset_id
  redraw()
end

function M.stream_started(request_id)
  M.streaming[request_id] = 0
  redraw()
end

function M.stream_progress(request_id)
  if M.streaming[request_id] then
    M.streaming[request_id] = M.streaming[request_id] + 1
  end
end

function M.stream_done(request_id)
  M.streaming[request_id] = nil
  redraw()
end

--- Downloads in progress: download id -> last openLlm/models/downloadProgress params.
M.download = {}
local last_echo = 0

function M.download_started(id)
  M.download[id] = M.download[id] or { percent = 0 }
  redraw()
end

function M.download_done(id)
  M.download[id] = nil
  redraw()
end

--- Download ids in progress.
---@return string[]
function M.downloads()
  local ids = vim.tbl_keys(M.download)
  table.sort(ids)
  return ids
end

--- openLlm/models/downloadProgress: statusline, and the echo area twice a second.
---@param params table
function M.download_progress(params)
  if type(params) ~= 'table' or not params.downloadId then
    return
  end
  if params.stage == 'done' then
    M.download[params.downloadId] = nil
  else
    M.download[params.downloadId] = params
  end
  redraw()
  local now = vim.uv.now()
  if now - last_echo >= 500 or params.stage == 'done' then
    last_echo = now
    local text = ('open_llm: %s %s %d%%'):format(
      params.stage == 'done' and 'downloaded' or 'downloading',
      params.repo or params.downloadId,
      math.floor(tonumber(params.percent) or 0)
    )
    if type(params.bytesPerSecond) == 'number' and params.stage ~= 'done' then
      text = text .. (' · %.1f MB/s'):format(params.bytesPerSecond / 1e6)
    end
    vim.schedule(function()
      vim.api.nvim_echo({ { text } }, false, {})
    end)
  end
end

function M.forget(client_id)
  M.by_client[client_id] = nil
  M.preset[client_id] = nil
  redraw()
end

--- The status of the client serving the current buffer (else any).
---@return table|nil status, integer|nil client_id
function M.current()
  local lsp = require('open_llm.lsp')
  local client = lsp.client()
  if client and M.by_client[client.id] then
    return M.by_client[client.id], client.id
  end
  for id, status in pairs(M.by_client) do
    return status, id
  end
end

local function model_name(status)
  local model = status.model
  if type(model) == 'table' and type(model.name) == 'string' and model.name ~= '' then
    return model.name
  end
  return nil
end

--- Text for a statusline format string: control characters become spaces and `%`
--- is doubled, so a model name or preset id (which a repository may choose) cannot
--- inject statusline items such as `%{...}` or `%!`.
---@param text string
---@return string
function M.escape(text)
  return (text:gsub('[%c]', ' '):gsub('%%', '%%%%'))
end

--- A short text for the statusline, e.g. "LLM SmolLM2 135M Instruct · coding-assistant",
--- "LLM loading 40%%", "LLM error". Empty when no server runs. Escaped for a statusline
--- format string (`%` doubled): use it as `%{%...%}`, with `%!`, or as a lualine component.
---@return string
function M.statusline()
  local status, client_id = M.current()
  if not status then
    return ''
  end
  local parts = { 'LLM' }
  local state = status.state
  if state == 'loading' then
    table.insert(parts, ('loading %d%%'):format(tonumber(status.progress) or 0))
  elseif state == 'error' then
    table.insert(parts, 'error')
  elseif state == 'idle' then
    table.insert(parts, 'idle')
  else
    table.insert(parts, model_name(status) or state or '?')
  end
  local preset = client_id and M.preset[client_id]
  if preset then
    table.insert(parts, '· ' .. preset)
  end
  if next(M.streaming) then
    table.insert(parts, '· answering')
  end
  for _, id in ipairs(M.downloads()) do
    table.insert(parts, ('· ↓ %d%%'):format(math.floor(tonumber(M.download[id].percent) or 0)))
  end
  return M.escape(table.concat(parts, ' '))
end

return M
