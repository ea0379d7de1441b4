-- setup() with bad options: one clear message each, nothing enabled. Then a Neovim without
-- native inline completion: setup() still works and says that inline completion needs 0.12.
-- No server is started (no file buffer is opened).
local T = dofile(vim.g.open_llm_test_dir .. '/harness.lua')

local CASES = {
  { name = 'split', opts = { chat = { split = 'diagonal' } } },
  { name = 'cmd_string', opts = { cmd = 'open-llm-lsp' } },
  { name = 'unknown_top', opts = { modle = 'x' } },
  { name = 'unknown_nested', opts = { chat = { keymaps = { sendd = '<CR>' } } } },
  { name = 'enabled_type', opts = { inline_completion = { enabled = 'yes' } } },
  { name = 'settings_list', opts = { settings = { 'model' } } },
  { name = 'size', opts = { chat = { size = 0 } } },
  { name = 'not_a_table', opts = 'open-llm-lsp' },
}

T.run(function()
  local open_llm = require('open_llm')
  T.step('bad_options', function(r)
    r.cases = {}
    for _, case in ipairs(CASES) do
      local n = #T.results.notifications
      local ok = open_llm.setup(case.opts)
      local msgs = {}
      for i = n + 1, #T.results.notifications do
        table.insert(msgs, T.results.notifications[i])
      end
      r.cases[case.name] = { returned = ok, messages = msgs }
    end
    r.enabled = vim.lsp.is_enabled('open_llm')
    -- A command after a failed setup repeats the error instead of starting with defaults.
    local n = #T.results.notifications
    vim.cmd('OpenLlmChats')
    r.command_message = T.results.notifications[n + 1]
    r.enabled_after_command = vim.lsp.is_enabled('open_llm')
  end)

  T.step('old_neovim', function(r)
    -- What a Neovim before 0.12 reports (no vim.lsp.inline_completion).
    require('open_llm.lsp').inline_supported = function()
      return false
    end
    local n = #T.results.notifications
    r.returned = open_llm.setup({ cmd = { 'open-llm-lsp-not-started' } })
    r.messages = {}
    for i = n + 1, #T.results.notifications do
      table.insert(r.messages, T.results.notifications[i])
    end
    r.enabled = vim.lsp.is_enabled('open_llm')
    r.commands = vim.tbl_filter(function(c)
      return c:match('^OpenLlm')
    end, vim.tbl_keys(vim.api.nvim_get_commands({})))
    table.sort(r.commands)
  end)

  T.step('help', function(r)
    -- :help open_llm and its tags, from a copy of nvim/doc (helptags writes a tags file).
    local dir = vim.fn.tempname()
    vim.fn.mkdir(dir .. '/doc', 'p')
    local doc = vim.g.open_llm_test_repo .. '/nvim/doc/open_llm.txt'
    vim.fn.writefile(vim.fn.readfile(doc), dir .. '/doc/open_llm.txt')
    vim.opt.runtimepath:prepend(dir)
    vim.cmd.helptags(vim.fn.fnameescape(dir .. '/doc'))
    r.tags = {}
    for _, tag in ipairs({
      'open_llm',
      'open_llm.setup()',
      ':OpenLlmChat',
      ':OpenLlmAsk',
      ':OpenLlmChats',
      ':OpenLlmChatSearch',
      ':OpenLlmPreset',
      ':OpenLlmModel',
      'open_llm-statusline',
      'open_llm-accept',
      'open_llm-health',
    }) do
      local ok = pcall(vim.cmd.help, tag)
      r.tags[tag] = ok
        and vim.bo.buftype == 'help'
        and vim.fs.basename(vim.api.nvim_buf_get_name(0))
    end
  end)
end)
