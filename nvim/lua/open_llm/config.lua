--- Options of require('open_llm').setup(): defaults, validation and the resolved values.
---
--- Every option is checked with vim.validate; an unknown or invalid option makes setup()
--- report one message naming the option (e.g. `open_llm: chat.split: expected one of
--- "right", "left", "above", "below", "tab", "current", got "diagonal"`).
local M = {}

---@class open_llm.Keymaps
---@field accept string|false Accept the whole suggestion (insert mode; falls back to the key).
---@field accept_line string|false Accept the suggestion up to the end of its first line.
---@field next string|false Show the next suggestion.
---@field prev string|false Show the previous suggestion.

---@class open_llm.ChatKeymaps
---@field send string|false Send the prompt (normal mode, chat buffer).
---@field stop string|false Stop the answer being generated (normal and insert mode).
---@field new_chat string|false Start a new chat in the chat window (normal mode).
---@field chats string|false Open the chat picker (normal mode).

---@class open_llm.Options
M.defaults = {
  --- Command starting the server; e.g. { 'python3', '-m', 'lsp_server' } for a checkout.
  cmd = { 'open-llm-lsp' },
  --- Extra environment variables for the server process.
  cmd_env = nil,
  --- File types the server attaches to; nil attaches to every file type.
  filetypes = nil,
  --- Files or folders marking a project root (its chats and active preset live there);
  --- without one the current directory is the workspace folder.
  root_markers = { '.openllm', '.git', 'pyproject.toml', 'package.json', 'Cargo.toml', 'go.mod' },
  --- The `openLlm` settings section (see the README's settings table), sent as
  --- initializationOptions and answered to workspace/configuration.
  settings = {},
  inline_completion = {
    --- Ghost text while typing (Neovim 0.12+).
    enabled = true,
    ---@type open_llm.Keymaps
    keymaps = {
      accept = '<Tab>',
      accept_line = '<M-l>',
      next = '<M-]>',
      prev = '<M-[>',
    },
  },
  chat = {
    --- Where :OpenLlmChat opens: "right", "left", "above", "below", "tab" or "current".
    split = 'right',
    --- Width (right/left) or height (above/below) of the chat window; nil: half.
    size = nil,
    --- Show the statistics of each answer as virtual text.
    show_stats = true,
    --- Sampling overrides sent with every message (e.g. { temperature = 0.2, maxTokens = 512 }).
    sampling = nil,
    ---@type open_llm.ChatKeymaps
    keymaps = {
      send = '<CR>',
      stop = '<C-c>',
      new_chat = '<leader>n',
      chats = '<leader>l',
    },
  },
  --- Notify when the model is ready or fails to load (the server also shows its own messages).
  notify = true,
}

local SPLITS = { 'right', 'left', 'above', 'below', 'tab', 'current' }

local function list_of_strings(v)
  if not vim.islist(v) then
    return false
  end
  for _, item in ipairs(v) do
    if type(item) ~= 'string' or item == '' then
      return false
    end
  end
  return true
end

local function key(v)
  return v == false or (type(v) == 'string' and v ~= '')
end

local function one_of(values)
  return function(v)
    return vim.tbl_contains(values, v)
  end,
    'one of ' .. table.concat(
      vim.tbl_map(function(s)
        return ('"%s"'):format(s)
      end, values),
      ', '
    )
end

--- Validators per option path: { validator, optional, message }.
local SPEC = {
  ['cmd'] = {
    function(v)
      return list_of_strings(v) and #v > 0
    end,
    false,
    'a non-empty list of strings, e.g. { "open-llm-lsp" }',
  },
  ['cmd_env'] = { 'table', true },
  ['filetypes'] = { list_of_strings, true, 'a list of file types, or nil for all' },
  ['root_markers'] = { list_of_strings, false, 'a list of file or folder names' },
  ['settings'] = {
    function(v)
      return type(v) == 'table' and (next(v) == nil or not vim.islist(v))
    end,
    false,
    'a table with the openLlm settings, e.g. { engine = { contextLength = 4096 } }',
  },
  ['inline_completion'] = { 'table', false },
  ['inline_completion.enabled'] = { 'boolean', false },
  ['inline_completion.keymaps'] = { 'table', false },
  ['inline_completion.keymaps.accept'] = { key, false, 'a key (string) or false' },
  ['inline_completion.keymaps.accept_line'] = { key, false, 'a key (string) or false' },
  ['inline_completion.keymaps.next'] = { key, false, 'a key (string) or false' },
  ['inline_completion.keymaps.prev'] = { key, false, 'a key (string) or false' },
  ['chat'] = { 'table', false },
  ['chat.size'] = {
    function(v)
      return type(v) == 'number' and v >= 1 and v == math.floor(v)
    end,
    true,
    'a positive whole number of columns or lines',
  },
  ['chat.show_stats'] = { 'boolean', false },
  ['chat.sampling'] = { 'table', true },
  ['chat.keymaps'] = { 'table', false },
  ['chat.keymaps.send'] = { key, false, 'a key (string) or false' },
  ['chat.keymaps.stop'] = { key, false, 'a key (string) or false' },
  ['chat.keymaps.new_chat'] = { key, false, 'a key (string) or false' },
  ['chat.keymaps.chats'] = { key, false, 'a key (string) or false' },
  ['notify'] = { 'boolean', false },
}
do
  local fn, msg = one_of(SPLITS)
  SPEC['chat.split'] = { fn, false, msg }
end

--- Tables whose content is free-form (not checked key by key).
local OPEN = { settings = true, cmd_env = true, ['chat.sampling'] = true }

--- Report keys that no option has, so typos do not pass silently.
local function check_unknown(opts, prefix)
  for k, v in pairs(opts) do
    local path = prefix and (prefix .. '.' .. tostring(k)) or tostring(k)
    if SPEC[path] == nil then
      local known = {}
      for p in pairs(SPEC) do
        local parent, leaf = p:match('^(.*)%.([^.]+)$')
        if (parent == prefix) or (prefix == nil and not p:find('.', 1, true)) then
          table.insert(known, leaf or p)
        end
      end
      table.sort(known)
      error(('unknown option "%s" (known: %s)'):format(path, table.concat(known, ', ')), 0)
    end
    if type(v) == 'table' and not OPEN[path] and not vim.islist(v) then
      check_unknown(v, path)
    end
  end
end

local function get(tbl, path)
  local v = tbl
  for part in path:gmatch('[^.]+') do
    if type(v) ~= 'table' then
      return nil
    end
    v = v[part]
  end
  return v
end

--- Merge `opts` over the defaults and validate the result.
---@param opts table|nil
---@return open_llm.Options
function M.resolve(opts)
  if opts ~= nil and type(opts) ~= 'table' then
    error(('setup() expects a table of options, got %s'):format(type(opts)), 0)
  end
  opts = opts or {}
  check_unknown(opts, nil)
  -- Lists replace the defaults instead of being merged index by index.
  local merged = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), opts)
  for _, list_key in ipairs({ 'cmd', 'filetypes', 'root_markers' }) do
    if opts[list_key] ~= nil then
      merged[list_key] = opts[list_key]
    end
  end
  local paths = vim.tbl_keys(SPEC)
  table.sort(paths)
  for _, path in ipairs(paths) do
    local spec = SPEC[path]
    local ok, err = pcall(vim.validate, path, get(merged, path), spec[1], spec[2], spec[3])
    if not ok then
      -- vim.validate errors carry the caller's position; keep only the message.
      local msg = tostring(err):gsub('^[^\n]-:%d+: ', ''):gsub('got table: 0x%x+', 'got a table')
      error(msg, 0)
    end
  end
  return merged
end

--- The resolved options (set by setup()).
---@type open_llm.Options|nil
M.options = nil

return M
