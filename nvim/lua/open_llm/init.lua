--- Open LLM LSP for Neovim: an offline coding assistant (inline completion and chat) served
--- by the open-llm-lsp language server. See :help open_llm.
local M = {}

--- Configure the plugin and start the server for file buffers (vim.lsp.config/enable).
--- Reports one clear message and returns false when an option is invalid.
---@param opts open_llm.Options|nil
---@return boolean ok
function M.setup(opts)
  if vim.fn.has('nvim-0.11') == 0 then
    vim.notify(
      ('open_llm needs Neovim 0.11 or newer (vim.lsp.config); this is %s'):format(
        tostring(vim.version())
      ),
      vim.log.levels.ERROR
    )
    return false
  end
  local config = require('open_llm.config')
  local ok, resolved = pcall(config.resolve, opts)
  if not ok then
    M.setup_error = 'open_llm: ' .. tostring(resolved)
    vim.notify(M.setup_error, vim.log.levels.ERROR)
    return false
  end
  M.setup_error = nil
  config.options = resolved
  require('open_llm.commands').define()
  require('open_llm.lsp').setup(resolved)
  return true
end

--- Whether setup() has run.
---@return boolean
function M.is_setup()
  return require('open_llm.config').options ~= nil
end

--- Statusline component: model state, active preset, "answering" while a chat streams.
---@return string
function M.statusline()
  return require('open_llm.status').statusline()
end

--- The last status reported by the server (openLlm/status), or nil.
---@return table|nil
function M.status()
  return (require('open_llm.status').current())
end

--- Replace the openLlm settings section and push it to the running server.
---@param settings table
function M.set_settings(settings)
  vim.validate('settings', settings, 'table')
  local config = require('open_llm.config')
  assert(config.options, 'open_llm: call setup() first')
  config.options.settings = settings
  require('open_llm.lsp').settings_changed()
end

--- Open the current chat (:OpenLlmChat).
function M.chat()
  require('open_llm.chat').open_current()
end

--- Accept the first line of the shown suggestion (for your own keymaps).
---@return boolean
function M.accept_line()
  return require('open_llm.lsp').accept_line()
end

return M
