--- The user commands (defined by plugin/open_llm.lua, and again by setup() for plugin
--- managers that add nvim/ to the runtimepath after startup).
local M = {}

local function ready()
  local open_llm = require('open_llm')
  if open_llm.setup_error then
    vim.notify(open_llm.setup_error, vim.log.levels.ERROR)
    return false
  end
  if not open_llm.is_setup() then
    -- Commands work without an explicit setup(): use the defaults.
    return open_llm.setup({})
  end
  return true
end

local function command(name, fn, opts)
  -- (re)defining a command replaces it, so define() can run more than once
  vim.api.nvim_create_user_command(name, function(args)
    if ready() then
      fn(args)
    end
  end, opts)
end

function M.define()
  command('OpenLlmChat', function(args)
    if args.args == 'new' then
      require('open_llm.chat').open_new()
    else
      require('open_llm.chat').open_current()
    end
  end, {
    nargs = '?',
    complete = function()
      return { 'new' }
    end,
    desc = 'Open LLM: open the current chat (`new`: a new chat)',
  })

  command('OpenLlmAsk', function(args)
    require('open_llm.chat').ask(vim.api.nvim_get_current_buf(), args.line1, args.line2, args.args)
  end, { range = true, nargs = '*', desc = 'Open LLM: ask about the selected lines' })

  command('OpenLlmStop', function()
    local chat = require('open_llm.chat')
    for bufnr, state in pairs(chat.states) do
      if state.stream then
        chat.stop(bufnr)
      end
    end
  end, { desc = 'Open LLM: stop the answers being generated' })

  command('OpenLlmChats', function()
    require('open_llm.pickers').chats()
  end, { desc = 'Open LLM: pick a chat (open, rename, duplicate, delete, branch)' })

  command('OpenLlmChatSearch', function(args)
    require('open_llm.pickers').search(args.args)
  end, { nargs = '*', desc = 'Open LLM: search the chats' })

  command('OpenLlmPreset', function()
    require('open_llm.pickers').preset()
  end, { desc = 'Open LLM: pick the active preset' })

  command('OpenLlmModel', function()
    require('open_llm.pickers').model()
  end, { desc = 'Open LLM: the models in use' })
end

return M
