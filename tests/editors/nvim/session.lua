-- One Neovim session against the real server and bundled models: attach, ghost text,
-- a streamed chat, stop, reopen from :OpenLlmChats, search, :OpenLlmAsk, chat actions,
-- preset switch, :checkhealth. Each step records what it saw; tests/editors/test_nvim.py
-- asserts on it.
local T = dofile(vim.g.open_llm_test_dir .. '/harness.lua')
local api = vim.api
local cfg = T.config

T.run(function()
  local client
  local chat = require('open_llm.chat')
  local open_llm = require('open_llm')

  T.step('setup', function(r)
    r.ok_setup = open_llm.setup({
      cmd = cfg.cmd,
      settings = cfg.settings,
      chat = { sampling = { maxTokens = 24, temperature = 0, seed = 1 } },
    })
    assert(r.ok_setup, 'setup() returned false')
  end)

  T.step('attach', function(r)
    vim.cmd.edit(vim.fn.fnameescape(cfg.workspace .. '/fib.py'))
    r.filetype = vim.bo.filetype
    client = T.wait(60000, function()
      return vim.lsp.get_clients({ name = 'open_llm', bufnr = 0 })[1]
    end)
    assert(client, 'no open_llm client attached to the Python buffer')
    assert(
      T.wait(60000, function()
        return client.initialized
      end),
      'the client never initialized'
    )
    r.client_name = client.name
    r.root_dir = client.root_dir
    r.server_info = client.server_info
    r.init_options = client.config.init_options
    r.inline_enabled = vim.lsp.inline_completion.is_enabled({ bufnr = 0 })
    r.accept_map = vim.fn.maparg('<Tab>', 'i', false, true).desc
    local st = T.wait(150000, function()
      local s = open_llm.status()
      return s and s.state == 'ready' and s
    end, 200)
    assert(st, 'the model never became ready: ' .. vim.inspect(open_llm.status()))
    r.state = st.state
    r.context_length = st.model and st.model.contextLength
    r.settings_problems = T.request('openLlm/status').settingsProblems
    r.statusline = open_llm.statusline()
  end)

  T.step('inline', function(r)
    local ns = api.nvim_get_namespaces()['nvim.lsp.inline_completion']
    assert(ns, 'no inline completion namespace')
    local last = api.nvim_buf_line_count(0)
    api.nvim_win_set_cursor(0, { last, 0 })
    r.before = T.lines()
    T.feed('A')
    r.mode = api.nvim_get_mode().mode
    local mark = T.wait(90000, function()
      return api.nvim_buf_get_extmarks(0, ns, 0, -1, { details = true })[1]
    end, 50)
    assert(mark, 'no ghost text (extmark in nvim.lsp.inline_completion) appeared')
    local details = mark[4]
    local ghost = {}
    local first = {}
    for _, chunk in ipairs(details.virt_text or {}) do
      table.insert(first, chunk[1])
    end
    table.insert(ghost, table.concat(first))
    for _, line in ipairs(details.virt_lines or {}) do
      local parts = {}
      for _, chunk in ipairs(line) do
        table.insert(parts, chunk[1])
      end
      table.insert(ghost, table.concat(parts))
    end
    r.ghost = ghost
    r.ghost_row = mark[2]
    r.buffer_while_shown = T.lines()
    T.feed('<Tab>', 50)
    local changed = T.wait(10000, function()
      return not vim.deep_equal(T.lines(), r.before)
    end)
    r.after = T.lines()
    r.accepted = changed and true or false
    T.feed('<Esc>')
    assert(changed, 'accepting did not change the buffer')
  end)

  local chat_state
  T.step('chat', function(r)
    vim.cmd('OpenLlmChat')
    chat_state = T.wait(30000, function()
      local s = chat.states[api.nvim_get_current_buf()]
      return s and not s.loading and s
    end)
    assert(chat_state, 'no chat buffer opened')
    r.filetype = vim.bo.filetype
    r.windows = #api.nvim_tabpage_list_wins(0)
    local bufnr = chat_state.bufnr
    api.nvim_buf_set_lines(bufnr, -2, -1, false, { 'What is a Python generator? One sentence.' })
    T.feed('<CR>', 10)
    local snapshots = 0
    local done = T.wait(120000, function()
      local s = chat_state.stream
      if s and s.partial_seen and not r.partial_buffer then
        r.partial_buffer = T.lines(bufnr)
      end
      if s then
        snapshots = snapshots + 1
      end
      return chat_state.stream == nil and chat_state.last_stream ~= nil
    end, 10)
    assert(done, 'the answer did not finish')
    r.polls_while_streaming = snapshots
    r.chat_id = chat_state.chat_id
    r.title = chat_state.title
    r.deltas = chat_state.last_stream.deltas
    local answer = chat_state.messages[#chat_state.messages]
    r.answer = answer.content
    r.answer_error = answer.error
    r.buffer = T.lines(bufnr)
    r.stats_marks = {}
    local marks = api.nvim_buf_get_extmarks(bufnr, chat.ns_stats, 0, -1, { details = true })
    for _, m in ipairs(marks) do
      table.insert(r.stats_marks, m[4].virt_text[1][1])
    end
    -- The generated title arrives with openLlm/chat/changed after the answer.
    T.wait(20000, function()
      return chat_state.title ~= 'New chat'
    end)
    r.title = chat_state.title
    r.first_line = T.lines(bufnr)[1]
  end)

  T.step('stop', function(r)
    local options = require('open_llm.config').options
    local saved = options.chat.sampling
    options.chat.sampling = { maxTokens = 400, temperature = 0.8, seed = 2 }
    local bufnr = chat_state.bufnr
    api.nvim_buf_set_lines(bufnr, -2, -1, false, { 'Write a long story about a dragon.' })
    T.feed('<CR>', 10)
    local streaming = T.wait(60000, function()
      return chat_state.stream and chat_state.stream.partial_seen
    end, 10)
    options.chat.sampling = saved
    assert(streaming, 'the second answer never started streaming')
    T.feed('<C-c>', 10)
    local done = T.wait(60000, function()
      return chat_state.stream == nil
    end, 20)
    assert(done, 'the answer did not stop')
    local answer = chat_state.messages[#chat_state.messages]
    r.incomplete = answer.incomplete
    r.stop_reason = answer.stats and answer.stats.stopReason
    r.tokens = answer.stats and answer.stats.generatedTokens
    r.error = answer.error
  end)

  T.step('reopen', function(r)
    local chat_id = chat_state.chat_id
    local title = chat_state.title
    vim.cmd('bwipeout! ' .. chat_state.bufnr)
    r.wiped = chat.states[chat_state.bufnr] == nil
    table.insert(T.choices, function(items)
      for i, item in ipairs(items) do
        if item.id == chat_id then
          return i
        end
      end
    end)
    table.insert(T.choices, function(_, labels)
      return vim.iter(ipairs(labels)):find(function(_, l)
        return l == 'Open'
      end)
    end)
    local n = #T.selects
    vim.cmd('OpenLlmChats')
    local state = T.wait(30000, function()
      local s = chat.states[api.nvim_get_current_buf()]
      return s and s.chat_id == chat_id and not s.loading and #s.messages > 0 and s
    end)
    r.picker_labels = T.selects[n + 1] and T.selects[n + 1].labels
    r.action_labels = T.selects[n + 2] and T.selects[n + 2].labels
    assert(state, 'the chat did not reopen')
    r.title = title
    r.buffer = T.lines(state.bufnr)
    r.messages = #state.messages
    r.first_answer = state.messages[2] and state.messages[2].content
    r.stats_marks = #api.nvim_buf_get_extmarks(state.bufnr, chat.ns_stats, 0, -1, {})
  end)

  T.step('search', function(r)
    local chat_id = chat_state.chat_id
    local hits_seen
    table.insert(T.choices, function(items)
      hits_seen = items
      for i, hit in ipairs(items) do
        if hit.chatId == chat_id then
          return i
        end
      end
    end)
    vim.cmd('OpenLlmChatSearch generator')
    assert(
      T.wait(20000, function()
        return hits_seen
      end),
      'the search picker never showed'
    )
    r.hits = vim.tbl_map(function(h)
      return { chatId = h.chatId, title = h.chatTitle, snippet = h.snippet }
    end, hits_seen)
    r.found = vim.iter(hits_seen):any(function(h)
      return h.chatId == chat_id
    end)
    r.chat_id = chat_id
  end)

  local function state_of(chat_id)
    for _, s in pairs(chat.states) do
      if s.chat_id == chat_id and api.nvim_buf_is_valid(s.bufnr) then
        return s
      end
    end
  end

  local function pick(pred)
    table.insert(T.choices, function(items, labels)
      for i, item in ipairs(items) do
        if pred(item, labels[i]) then
          return i
        end
      end
    end)
  end

  T.step('ask', function(r)
    local chat_id = chat_state.chat_id
    local state = assert(state_of(chat_id), 'the chat is not open')
    local before = #state.messages
    local src = vim.fn.bufnr(cfg.workspace .. '/fib.py')
    local win = vim.fn.bufwinid(src)
    assert(win ~= -1, 'fib.py is not shown')
    api.nvim_set_current_win(win)
    T.feed('<Esc>gg')
    T.feed('Vjjj', 50)
    T.feed(':OpenLlmAsk What does it return for n = 1?<CR>', 50)
    local done = T.wait(120000, function()
      return state.stream == nil and #state.messages >= before + 2
    end, 20)
    assert(done, 'no answer to :OpenLlmAsk')
    r.user_message = state.messages[before + 1]
    r.answer = state.messages[before + 2].content
    r.answer_error = state.messages[before + 2].error
    local detail = T.request('openLlm/chat/get', { chatId = chat_id })
    local stored = detail.messages[before + 1]
    r.stored_content = stored.content
    r.stored_attachments = vim.tbl_map(function(a)
      return { path = a.path, uri = a.uri, range = a.range }
    end, stored.attachments or {})
  end)

  T.step('actions', function(r)
    local chat_id = chat_state.chat_id
    -- Rename
    pick(function(item)
      return item.id == chat_id
    end)
    pick(function(_, label)
      return label == 'Rename'
    end)
    table.insert(T.inputs, 'Renamed by the test')
    vim.cmd('OpenLlmChats')
    r.renamed = T.wait(20000, function()
      local d = T.request('openLlm/chat/get', { chatId = chat_id })
      return d.chat.title == 'Renamed by the test' and d.chat.title
    end, 200)
    r.buffer_title = T.lines(state_of(chat_id).bufnr)[1]
    -- Duplicate: the copy opens
    pick(function(item)
      return item.id == chat_id
    end)
    pick(function(_, label)
      return label == 'Duplicate'
    end)
    vim.cmd('OpenLlmChats')
    local copy = T.wait(20000, function()
      local s = chat.states[api.nvim_get_current_buf()]
      return s and s.chat_id and s.chat_id ~= chat_id and not s.loading and #s.messages > 0 and s
    end)
    assert(copy, 'the duplicate did not open')
    r.duplicate_id = copy.chat_id
    r.duplicate_messages = #copy.messages
    r.duplicate_title = copy.title
    -- Branch from the first answer: a new chat with the first exchange only
    pick(function(item)
      return item.id == chat_id
    end)
    pick(function(_, label)
      return label == 'Branch from a message'
    end)
    table.insert(T.choices, function()
      return 2
    end)
    vim.cmd('OpenLlmChats')
    local branch = T.wait(20000, function()
      local s = chat.states[api.nvim_get_current_buf()]
      return s
        and s.chat_id
        and s.chat_id ~= chat_id
        and s.chat_id ~= r.duplicate_id
        and not s.loading
        and #s.messages > 0
        and s
    end)
    assert(branch, 'the branch did not open')
    r.branch_messages = #branch.messages
    r.branch_title = branch.title
    -- Delete the duplicate (to the trash)
    pick(function(item)
      return item.id == r.duplicate_id
    end)
    pick(function(_, label)
      return label == 'Delete'
    end)
    pick(function(item)
      return item == 'Move to the trash'
    end)
    vim.cmd('OpenLlmChats')
    r.deleted = T.wait(20000, function()
      local list = T.request('openLlm/chat/list', { limit = 100 })
      return not vim.iter(list.items):any(function(c)
        return c.id == r.duplicate_id
      end)
    end, 200) and true or false
    r.duplicate_buffer_closed = state_of(r.duplicate_id) == nil
    -- Back to the first chat for the next steps
    chat.open(chat_id)
  end)

  T.step('preset', function(r)
    local status = require('open_llm.status')
    local before = T.request('openLlm/presets/active').presetId
    r.before = before
    r.statusline_before = open_llm.statusline()
    local target
    table.insert(T.choices, function(items)
      for i, e in ipairs(items) do
        if e.id == 'concise' or (not target and e.id ~= before) then
          target = e.id
          if e.id == 'concise' then
            return i
          end
        end
      end
      for i, e in ipairs(items) do
        if e.id == target then
          return i
        end
      end
    end)
    vim.cmd('OpenLlmPreset')
    local changed = T.wait(30000, function()
      return status.preset[client.id] ~= before and status.preset[client.id]
    end)
    r.target = target
    r.client_preset = changed
    r.after = T.request('openLlm/presets/active').presetId
    r.statusline_after = open_llm.statusline()
    r.status_state = T.request('openLlm/status').state
  end)

  T.step('health', function(r)
    vim.cmd('checkhealth open_llm')
    local done = T.wait(60000, function()
      local text = table.concat(T.lines(), '\n')
      return text:find('settings', 1, true) and text
    end, 100)
    r.lines = T.lines()
    assert(done, 'checkhealth did not finish')
  end)
end)
