--- The language client: vim.lsp.config / vim.lsp.enable, native inline completion and its
--- keymaps, custom notifications, and request helpers used by the chat and the pickers.
local status = require('open_llm.status')

local M = {}

--- Name of the vim.lsp.config entry (also the client's name).
M.NAME = 'open_llm'

--- Custom method names (docs/protocol.md; defined once in lsp_server/protocol/methods.py).
M.methods = {
  status = 'openLlm/status',
  status_changed = 'openLlm/statusChanged',
  presets_list = 'openLlm/presets/list',
  presets_select = 'openLlm/presets/select',
  presets_active = 'openLlm/presets/active',
  presets_changed = 'openLlm/presets/changed',
  chat_create = 'openLlm/chat/create',
  chat_list = 'openLlm/chat/list',
  chat_get = 'openLlm/chat/get',
  chat_rename = 'openLlm/chat/rename',
  chat_duplicate = 'openLlm/chat/duplicate',
  chat_delete = 'openLlm/chat/delete',
  chat_branch = 'openLlm/chat/branch',
  chat_search = 'openLlm/chat/search',
  chat_send = 'openLlm/chat/send',
  chat_cancel = 'openLlm/chat/cancel',
  chat_delta = 'openLlm/chat/delta',
  chat_changed = 'openLlm/chat/changed',
  models_list = 'openLlm/models/list',
  models_fit = 'openLlm/models/fit',
  models_recommend = 'openLlm/models/recommend',
  models_download = 'openLlm/models/download',
  models_cancel_download = 'openLlm/models/cancelDownload',
  models_select = 'openLlm/models/select',
  models_accept_license = 'openLlm/models/acceptLicense',
  models_download_progress = 'openLlm/models/downloadProgress',
}

--- JSON-RPC error codes the client reacts to.
M.codes = { method_not_found = -32601, cancelled = -32800 }

--- Whether this Neovim renders LSP inline completion natively (0.12+).
---@return boolean
function M.inline_supported()
  local ok, ic = pcall(function()
    return vim.lsp.inline_completion
  end)
  return ok and type(ic) == 'table' and type(ic.enable) == 'function'
end

--- The openLlm section as sent to the server (an empty table must stay a JSON object).
---@return table
local function section()
  local opts = require('open_llm.config').options
  local settings = opts and opts.settings or {}
  if next(settings) == nil then
    return vim.empty_dict()
  end
  return settings
end
M.section = section

--- Root folder of a buffer: the nearest root marker, else the current directory.
---@param bufnr integer
---@return string
function M.root(bufnr)
  local opts = require('open_llm.config').options
  local markers = opts and opts.root_markers or {}
  local ok, root = pcall(vim.fs.root, bufnr, markers)
  if ok and root then
    return root
  end
  return vim.fs.normalize(assert(vim.uv.cwd()))
end

--- One server per Neovim: a buffer of another project adds its root as a workspace folder
--- (chats and presets are kept per folder) instead of loading the model again.
local function reuse_client(client, config)
  if client.name ~= config.name or client:is_stopped() then
    return false
  end
  local root = config.root_dir
  if type(root) == 'string' then
    local uri = vim.uri_from_fname(root)
    for _, folder in ipairs(client.workspace_folders or {}) do
      if folder.uri == uri then
        return true
      end
    end
    local folder = { uri = uri, name = root }
    client:notify('workspace/didChangeWorkspaceFolders', {
      event = { added = { folder }, removed = {} },
    })
    client.workspace_folders = client.workspace_folders or {}
    table.insert(client.workspace_folders, folder)
  end
  return true
end

local function refresh_preset(client)
  client:request(M.methods.presets_active, vim.empty_dict(), function(err, result)
    if not err and type(result) == 'table' then
      status.set_preset(client.id, result.presetId)
    end
  end)
end
M.refresh_preset = refresh_preset

local handlers = {
  [M.methods.status_changed] = function(_, params, ctx)
    params = M.strip_nulls(params)
    if type(params) == 'table' then
      local previous = status.by_client[ctx.client_id]
      status.update(ctx.client_id, params)
      local opts = require('open_llm.config').options
      if opts and opts.notify and previous and previous.state ~= params.state then
        if params.state == 'ready' and previous.state == 'loading' then
          local name = type(params.model) == 'table' and params.model.name or 'model'
          vim.notify(('open_llm: %s ready'):format(name), vim.log.levels.INFO)
        end
      end
    end
  end,
  [M.methods.chat_delta] = function(_, params, ctx)
    require('open_llm.chat').on_delta(M.strip_nulls(params), ctx.client_id)
  end,
  [M.methods.chat_changed] = function(_, params, ctx)
    require('open_llm.chat').on_changed(M.strip_nulls(params), ctx.client_id)
  end,
  [M.methods.models_download_progress] = function(_, params)
    status.download_progress(M.strip_nulls(params))
  end,
  [M.methods.presets_changed] = function(_, _, ctx)
    local client = vim.lsp.get_client_by_id(ctx.client_id)
    if client then
      refresh_preset(client)
    end
  end,
  -- Answer workspace/configuration ourselves so an empty section is `{}`, not `[]`.
  ['workspace/configuration'] = function(_, params)
    local result = {}
    for _, item in ipairs(params and params.items or {}) do
      if item.section == 'openLlm' then
        table.insert(result, section())
      elseif item.section == nil or item.section == '' then
        table.insert(result, { openLlm = section() })
      else
        table.insert(result, vim.NIL)
      end
    end
    return result
  end,
}

--- Accept the suggestion up to the end of its first line (the rest stays a suggestion on
--- the next request, served from the server's cache).
---@return boolean accepted
function M.accept_line()
  if not M.inline_supported() then
    return false
  end
  return vim.lsp.inline_completion.get({
    on_accept = function(item)
      local text = item.insert_text
      if type(text) ~= 'string' then
        text = text.value or ''
      end
      local lines = vim.split(text, '\n', { plain = true })
      local bufnr = vim.api.nvim_get_current_buf()
      local range = item.range
      local typed = 0
      if range then
        local cursor = vim.api.nvim_win_get_cursor(0)
        if cursor[1] - 1 == range.start.row then
          typed = math.max(0, cursor[2] - range.start.col)
        end
      end
      local part = { lines[1] }
      if #lines > 1 and #lines[1] <= typed then
        part = { lines[1], lines[2] }
      end
      if range then
        vim.api.nvim_buf_set_text(
          bufnr,
          range.start.row,
          range.start.col,
          range.end_.row,
          range.end_.col,
          part
        )
        local row = range.start.row + #part
        local col = (#part == 1 and range.start.col or 0) + #part[#part]
        vim.api.nvim_win_set_cursor(0, { row, col })
      else
        vim.api.nvim_paste(table.concat(part, '\n'), false, -1)
      end
    end,
  })
end

local function set_inline_keymaps(bufnr, keys)
  local function map(lhs, rhs, desc)
    if lhs then
      vim.keymap.set('i', lhs, rhs, { buffer = bufnr, expr = true, desc = 'Open LLM: ' .. desc })
    end
  end
  -- Each key falls back to its usual meaning when no suggestion is shown.
  map(keys.accept, function()
    return vim.lsp.inline_completion.get() and '' or keys.accept
  end, 'accept the suggestion')
  map(keys.accept_line, function()
    return M.accept_line() and '' or keys.accept_line
  end, 'accept the first line of the suggestion')
  for lhs, count in pairs({ [keys.next or ''] = 1, [keys.prev or ''] = -1 }) do
    if lhs ~= '' then
      vim.keymap.set('i', lhs, function()
        vim.lsp.inline_completion.select({ count = count })
      end, {
        buffer = bufnr,
        desc = count > 0 and 'Open LLM: next suggestion' or 'Open LLM: previous suggestion',
      })
    end
  end
end

local function on_attach(args)
  local client = vim.lsp.get_client_by_id(args.data.client_id)
  if not client or client.name ~= M.NAME then
    return
  end
  local opts = require('open_llm.config').options
  if not opts or not opts.inline_completion.enabled or not M.inline_supported() then
    return
  end
  vim.lsp.inline_completion.enable(true, { bufnr = args.buf })
  set_inline_keymaps(args.buf, opts.inline_completion.keymaps)
end

--- Message shown by setup() on a Neovim without native inline completion.
function M.old_neovim_message()
  return (
    'open_llm: inline completion needs Neovim 0.12 or newer (this is %s); chat, the '
    .. 'pickers and :checkhealth work, and the model also answers regular LSP completion '
    .. '(<C-x><C-o>).'
  ):format(tostring(vim.version()))
end

local augroup

--- Define and enable the `open_llm` LSP config.
---@param opts open_llm.Options
function M.setup(opts)
  vim.lsp.config(M.NAME, {
    cmd = opts.cmd,
    cmd_env = opts.cmd_env,
    filetypes = opts.filetypes,
    root_dir = function(bufnr, on_dir)
      on_dir(M.root(bufnr))
    end,
    reuse_client = reuse_client,
    init_options = { openLlm = section() },
    settings = { openLlm = section() },
    handlers = handlers,
    on_init = function(client)
      client:request(M.methods.status, vim.empty_dict(), function(err, result)
        if not err and type(result) == 'table' then
          status.update(client.id, M.strip_nulls(result))
        end
      end)
      refresh_preset(client)
    end,
    on_exit = function(_, _, client_id)
      vim.schedule(function()
        status.forget(client_id)
      end)
    end,
  })
  if opts.inline_completion.enabled and not M.inline_supported() then
    vim.notify(M.old_neovim_message(), vim.log.levels.WARN)
  end
  augroup = vim.api.nvim_create_augroup('open_llm', { clear = true })
  vim.api.nvim_create_autocmd('LspAttach', { group = augroup, callback = on_attach })
  vim.lsp.enable(M.NAME)
end

--- Push new settings to running servers (workspace/didChangeConfiguration).
function M.settings_changed()
  for _, client in ipairs(vim.lsp.get_clients({ name = M.NAME })) do
    client.settings = { openLlm = section() }
    client:notify('workspace/didChangeConfiguration', { settings = { openLlm = section() } })
  end
end

--- The client serving `bufnr` (default: current buffer), else any running one.
---@param bufnr integer|nil
---@return vim.lsp.Client|nil
function M.client(bufnr)
  local clients = vim.lsp.get_clients({ name = M.NAME, bufnr = bufnr or 0 })
  if #clients == 0 then
    clients = vim.lsp.get_clients({ name = M.NAME })
  end
  return clients[1]
end

--- Call `cb(client)` once a server is running and initialized, starting one without a
--- file buffer if needed (e.g. :OpenLlmChat in an empty Neovim); `cb(nil, message)` on failure.
---@param cb fun(client: vim.lsp.Client|nil, err: string|nil)
function M.ensure(cb)
  local client = M.client()
  if not client then
    if not require('open_llm.config').options then
      cb(nil, 'open_llm is not set up: call require("open_llm").setup()')
      return
    end
    local config = vim.deepcopy(vim.lsp.config[M.NAME])
    config.root_dir = M.root(vim.api.nvim_get_current_buf())
    local id = vim.lsp.start(config, { attach = false, reuse_client = reuse_client })
    client = id and vim.lsp.get_client_by_id(id)
    if not client then
      cb(nil, ('could not start the server (%s)'):format(table.concat(config.cmd, ' ')))
      return
    end
  end
  if client.initialized then
    cb(client)
    return
  end
  local waited = 0
  local timer = assert(vim.uv.new_timer())
  timer:start(
    50,
    50,
    vim.schedule_wrap(function()
      waited = waited + 50
      if client.initialized or client:is_stopped() or waited > 60000 then
        timer:stop()
        if not timer:is_closing() then
          timer:close()
        end
        if client.initialized then
          cb(client)
        else
          cb(nil, 'the server did not start: see :checkhealth open_llm and :LspLog')
        end
      end
    end)
  )
end

--- Drop JSON nulls (vim.NIL) from a decoded message, so `x.field or default` works.
---@param value any
---@return any
local function strip_nulls(value)
  if value == vim.NIL then
    return nil
  end
  if type(value) == 'table' then
    for k, v in pairs(value) do
      if v == vim.NIL then
        value[k] = nil
      elseif type(v) == 'table' then
        strip_nulls(v)
      end
    end
  end
  return value
end
M.strip_nulls = strip_nulls

--- A readable message for an LSP error.
---@param err table|string
---@return string
function M.error_text(err)
  if type(err) == 'table' then
    local kind = type(err.data) == 'table' and err.data.kind
    local message = err.message or vim.inspect(err)
    return kind and ('%s (%s)'):format(message, kind) or message
  end
  return tostring(err)
end

--- Send a request to the server (started on demand); `cb(err, result, client)`.
---@param method string
---@param params table|nil
---@param cb fun(err: table|nil, result: any, client: vim.lsp.Client|nil)
function M.request(method, params, cb)
  M.ensure(function(client, start_err)
    if not client then
      cb({ message = start_err }, nil, nil)
      return
    end
    if params == nil or (type(params) == 'table' and next(params) == nil) then
      params = vim.empty_dict() -- `{}` would be sent as a JSON array
    end
    local ok = client:request(method, params, function(err, result)
      cb(err, strip_nulls(result), client)
    end)
    if not ok then
      cb({ message = 'the server is not running' }, nil, client)
    end
  end)
end

--- Notify the user of a failed request.
---@param what string
---@param err table|string
function M.report(what, err)
  vim.notify(('open_llm: %s: %s'):format(what, M.error_text(err)), vim.log.levels.ERROR)
end

return M
