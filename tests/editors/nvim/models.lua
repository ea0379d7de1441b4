-- :OpenLlmModel against a fake Hugging Face Hub (HF_ENDPOINT): the models in use, a local
-- model selected for a role, and a download with its fit table and progress.
local T = dofile(vim.g.open_llm_test_dir .. '/harness.lua')
local api = vim.api
local cfg = T.config

T.run(function()
  local open_llm = require('open_llm')
  local pickers = require('open_llm.pickers')

  local function pick(pred)
    table.insert(T.choices, function(items, labels)
      for i, item in ipairs(items) do
        if pred(item, labels[i]) then
          return i
        end
      end
    end)
  end

  T.step('ready', function(r)
    assert(open_llm.setup({ cmd = cfg.cmd, settings = cfg.settings }))
    vim.cmd.edit(vim.fn.fnameescape(cfg.workspace .. '/fib.py'))
    local st = T.wait(150000, function()
      local s = open_llm.status()
      return s and s.roles and s.roles.chat and s.roles.chat.state == 'ready' and s
    end, 100)
    assert(st, 'the chat model never became ready: ' .. vim.inspect(open_llm.status()))
  end)

  T.step('in_use', function(r)
    pick(function(e)
      return e.kind == 'status'
    end)
    pickers.last_info = nil
    vim.cmd('OpenLlmModel')
    r.info = T.wait(20000, function()
      return pickers.last_info
    end)
    r.labels = T.selects[#T.selects].labels
    assert(r.info, 'no model information shown')
    vim.cmd('close')
  end)

  T.step('use_local', function(r)
    pick(function(e)
      return e.kind == 'local' and e.model.source == 'bundled' and e.model.hasChatTemplate
    end)
    pick(function(role)
      return role == 'chat'
    end)
    vim.cmd('OpenLlmModel')
    r.result = T.wait(30000, function()
      return pickers.last_selected
    end)
    assert(r.result, 'no model was selected')
  end)

  T.step('download', function(r)
    pick(function(e)
      return e.kind == 'repo'
    end)
    table.insert(T.inputs, cfg.repo)
    pick(function(item)
      return item:match('^Download ')
    end)
    vim.cmd('OpenLlmModel')
    r.fit = T.wait(60000, function()
      return pickers.last_fit
    end)
    assert(r.fit, 'no fit table')
    r.fit_lines = T.lines()
    r.statuslines = {}
    local done = T.wait(120000, function()
      local line = open_llm.statusline()
      if line:find('↓', 1, true) and r.statuslines[#r.statuslines] ~= line then
        table.insert(r.statuslines, line)
      end
      return pickers.last_download
    end, 20)
    assert(done, 'the download did not finish')
    r.result = { spec = done.spec, total = done.total, path = done.path }
    r.statusline_after = open_llm.statusline()
    local list = T.request('openLlm/models/list', { catalog = false })
    r.local_specs = vim.tbl_map(function(m)
      return m.spec
    end, list.models)
  end)
end)
